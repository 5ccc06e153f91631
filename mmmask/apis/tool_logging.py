"""Quiet logging for the command-line tools.

Building a model calls ``init_weights``; without a log file mmengine then
prints one initialisation line per parameter to the console (thousands for a
ViT-B), and loading a checkpoint, building a dataset or an optimizer add more
INFO lines. A tool (pictures, statistics, converters, benchmarks) should print
what its user asked for. :func:`quiet_tool_logging` makes mmengine's current
logger show warnings and errors only; ``--verbose`` brings the INFO lines
back. Training (``tools/train.py``) keeps mmengine's standard log: a Runner
creates its own logger, which becomes the current one.
"""
import logging
import warnings
from contextlib import contextmanager
from typing import Iterator

from mmengine.logging import MMLogger

#: name of the logger the tools make current
TOOL_LOGGER = 'mmmask-tool'

#: Python warnings the tools hide unless ``--verbose`` (regex of the start)
QUIET_WARNINGS = (r'torch\.meshgrid: in an upcoming release',
                  r"Only use 'alpha' for pillow backend")


def quiet_tool_logging(verbose: bool = False) -> MMLogger:
    """Make mmengine's current logger print warnings and errors only.

    Args:
        verbose (bool): Keep INFO messages (per-parameter initialisation,
            checkpoint loading) as mmengine prints them. Defaults to False.

    Returns:
        MMLogger: The current logger.
    """
    level = logging.INFO if verbose else logging.WARNING
    name = f'{TOOL_LOGGER}-{logging.getLevelName(level).lower()}'
    if name in MMLogger._instance_dict:
        # make it the current (latest) instance again
        logger = MMLogger._instance_dict.pop(name)
        MMLogger._instance_dict[name] = logger
    else:
        logger = MMLogger.get_instance(name, log_level=level)
    logger.setLevel(level)
    for handler in logger.handlers:
        handler.setLevel(level)
    if not verbose:
        # notices raised inside the OpenMMLab code (a torch deprecation in
        # mmseg/mmdet models, mmcv's colour jitter on the cv2 backend) that
        # a tool's user cannot act on
        for message in QUIET_WARNINGS:
            warnings.filterwarnings('ignore', message=message)
    return logger


@contextmanager
def quiet_logs(verbose: bool = False) -> Iterator[MMLogger]:
    """:func:`quiet_tool_logging` for a block: the previous current logger
    and warning filters come back after it (a tool's ``main`` called inside
    another program, e.g. the tests).

    Args:
        verbose (bool): Keep INFO messages. Defaults to False.

    Yields:
        MMLogger: The current logger inside the block.
    """
    previous = next(reversed(MMLogger._instance_dict), None)
    with warnings.catch_warnings():
        logger = quiet_tool_logging(verbose)
        try:
            yield logger
        finally:
            if previous is None:  # no logger before: none current after
                MMLogger._instance_dict.pop(logger.instance_name, None)
            elif previous in MMLogger._instance_dict:
                MMLogger._instance_dict[previous] = \
                    MMLogger._instance_dict.pop(previous)


def add_verbose_argument(parser) -> None:
    """``--verbose``: show mmengine's INFO log (per-parameter init, ...)."""
    parser.add_argument(
        '--verbose',
        action='store_true',
        help="show mmengine's INFO messages (per-parameter initialisation, "
        'checkpoint loading); by default only warnings and errors')
