"""Train several configs one after another in one (torchrun) process group.

Usage (as ``tools/dist_train.sh``, with several configs)::

    python -m torch.distributed.run --nproc_per_node=2 ... \\
        tests/multi_train.py CONFIG [CONFIG ...] --launcher pytorch

Each config goes through ``tools/train.py``'s own ``merge_args`` (CPU
adaptation included) and is trained by a fresh runner of the config's
``runner_type`` (as ``tools/train.py`` builds it); the process group is set
up once. Used by :func:`tests.helpers.dist_train_many`.
"""
import argparse

from mmengine.config import Config

from mmmask.apis import finish_distributed
from mmmask.engine import build_runner
from tests.helpers import train_tool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    tool = train_tool()
    for path in args.configs:
        # train.py's own parser: defaults, and LOCAL_RANK from --local-rank
        # when the launcher did not set it
        one = tool.parse_args([
            path, '--launcher', args.launcher, '--local-rank',
            str(args.local_rank)
        ])
        build_runner(tool.merge_args(Config.fromfile(path), one)).train()
    finish_distributed()


if __name__ == '__main__':
    main()
