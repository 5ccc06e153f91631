"""The command line shared by ``tools/model_converters/mmmask2*.py``.

A conversion prints one line: what was converted, and per target layout how
many keys the target model misses or ignores and whether all of them are
so by design. The keys themselves, grouped under their reason, follow with
``--verbose``, or by default for a layout with keys NOT EXPECTED (they need
a look: a wrong ``--prefix``, another encoder).
"""
import argparse
import sys
from typing import Dict, List, Optional

from mmmask.engine.tool_logging import add_verbose_argument, quiet_logs
from mmmask.fileio import WriteFailed
from mmmask.fileio.checkpoint import CorruptCheckpointError
from mmmask.fileio.checkpoint_sources import CheckpointDownloadError
from .convert import KeyReport, convert_file, expected_reason, summarise
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
    reports = key_reports(converted, target)
    surprising = {name: surprises(report, name)
                  for name, report in reports.items()}
    print(summary_line(args, len(converted), reports, surprising))
    for name, report in reports.items():
        if args.verbose or surprising[name]:
            for block in summarise(report, name, EXPECTED_KEYS.get(name)):
                print(block)
    return 0


def surprises(report: KeyReport, name: str) -> int:
    """How many missing or unexpected keys of a layout are not so by
    design (:data:`~mmmask.downstream.targets.EXPECTED_KEYS`)."""
    expected = EXPECTED_KEYS.get(name) or {}
    return sum(
        expected_reason(key, expected.get(kind, ())) is None
        for kind, keys in (('missing', report.missing),
                           ('unexpected', report.unexpected))
        for key in keys)


def summary_line(args: argparse.Namespace, num: int,
                 reports: Dict[str, KeyReport],
                 surprising: Dict[str, int]) -> str:
    """The one line a conversion prints."""
    layouts = ', '.join(
        f'{name}: {len(r.missing)} missing, {len(r.unexpected)} unexpected'
        for name, r in reports.items())
    bad = sum(surprising.values())
    if bad:
        verdict = (f'{bad} NOT EXPECTED, listed below: check --prefix and '
                   "that the checkpoint's encoder is the one the target "
                   'config builds')
    else:
        verdict = ('all by design, nothing to do (--verbose lists them with '
                   'their reasons)')
    return (f'converted {num} tensors from {args.src} (prefix '
            f'{args.prefix!r}) -> {args.dst}; {layouts}: {verdict}')
