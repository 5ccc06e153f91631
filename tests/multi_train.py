"""Train several configs one after another in one (torchrun) process group.

Usage (as ``tools/dist_train.sh``, with several configs)::

    python -m torch.distributed.run --nproc_per_node=2 ... \\
        tests/multi_train.py CONFIG [CONFIG ...] --launcher pytorch

Each config goes through ``tools/train.py``'s own ``merge_args`` (CPU
adaptation included) and is trained by a fresh ``Runner``; the process group
is set up once. Used by :func:`tests.helpers.dist_train_many`.
"""
import argparse
import os

from mmengine.config import Config
from mmengine.runner import Runner

from mmmask.apis import finish_distributed
from tests.helpers import train_tool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--launcher', default='none')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    tool = train_tool()
    for path in args.configs:
        one = argparse.Namespace(
            config=path, work_dir=None, resume=None, amp=False,
            no_validate=False, auto_scale_lr=False, cfg_options=None,
            launcher=args.launcher)
        Runner.from_cfg(tool.merge_args(Config.fromfile(path), one)).train()
    finish_distributed()


if __name__ == '__main__':
    main()
