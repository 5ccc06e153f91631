"""The command line shared by ``tools/model_converters/mmmask2*.py``."""
import argparse
import sys
from typing import List, Optional

from mmmask.apis.checkpoint import CorruptCheckpointError
from mmmask.apis.checkpoint_sources import CheckpointDownloadError
from mmmask.apis.tool_logging import add_verbose_argument, quiet_logs
from mmmask.fileio import WriteFailed
from .convert import convert_file, summarise
from .targets import EXPECTED_KEYS, key_reports

DESCRIPTIONS = {
    'mmpretrain': 'mmpretrain VisionTransformer (linear probe / fine-tune)',
    'mmseg': 'mmseg MAE backbone (UperNet on ADE20K)',
    'mmdet': 'mmmask PlainViTSimpleFPN (Mask R-CNN on COCO)',
}


def parse_args(target: str, argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=f'Convert an mmmask pre-training checkpoint to the '
        f'{DESCRIPTIONS[target]} key layout.')
    parser.add_argument(
        'src',
        help='pre-training checkpoint (.pth): a path or a URL '
        '(http(s)://, open-mmlab://, ...), loaded checked and weights-only')
    parser.add_argument('dst', help='output file; never the input')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help="prefix of the encoder's keys (default: backbone.; CAMAE's "
        'online encoder is there too)')
    add_verbose_argument(parser)
    return parser.parse_args(argv)


def main(target: str, argv: Optional[List[str]] = None) -> int:
    """Convert, save atomically, print missing/unexpected keys.

    Returns:
        int: 0 on success, 2 when the input is refused or the output cannot
        be written (message on stderr, no traceback; an existing output
        file is left as it was).
    """
    args = parse_args(target, argv)
    with quiet_logs(args.verbose):
        return convert_and_report(args, target)


def convert_and_report(args: argparse.Namespace, target: str) -> int:
    """The body of :func:`main`."""
    try:
        converted = convert_file(args.src, args.dst, target, args.prefix)
    except (FileNotFoundError, CorruptCheckpointError, WriteFailed,
            CheckpointDownloadError) as err:
        print(f'error: {err}', file=sys.stderr)  # names the file and fix
        return 2
    except (KeyError, ValueError, TypeError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f'error: {args.src}: {msg}', file=sys.stderr)
        return 2
    print(f'converted {len(converted)} tensors from {args.src} '
          f'(prefix {args.prefix!r}) -> {args.dst}')
    for name, report in key_reports(converted, target).items():
        for block in summarise(report, name, EXPECTED_KEYS.get(name)):
            print(block)
    return 0
