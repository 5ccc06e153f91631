"""Quiet logging for the command-line tools.

Building a model calls ``init_weights``; without a log file mmengine then
prints one initialisation line per parameter to the console (thousands for a
ViT-B), and loading a checkpoint, building a dataset or an optimizer add more
INFO lines. A tool (pictures, statistics, converters, benchmarks) should print
what its user asked for. :func:`quiet_tool_logging` makes mmengine's current
logger show warnings and errors only; ``--verbose`` brings the INFO lines
back.

Training (``tools/train.py``, ``tools/test.py``) keeps mmengine's log file
whole, but its console shows only what a user follows
(:class:`QuietConsoleFilter`): the progress lines with loss and ETA, the
results, warnings, and what mmmask itself says (the set-up line, a
schedule, a cache refresh). mmengine's preamble (environment, config dump,
hook order, one ``paramwise_options`` line per parameter) stays in the log
file, and on the console with ``--verbose``. The tools switch it on with
:func:`set_console_mode`; the runner applies it to the logger it builds
(:meth:`mmmask.engine.CheckedRunner.build_logger`), so the preamble the
runner logs while it is built is already filtered; the loggers the runner
built keep their filters after the tool's ``main`` (:func:`console_mode`)
gave the mode back.
"""
import logging
import os.path as osp
import re
import sys
import warnings
from contextlib import contextmanager
from typing import Iterator, List, Optional

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


# -- the console of a training run -----------------------------------------
#: mmengine INFO messages a quiet console shows (regex, from the start):
#: the progress and result lines of ``LoggerHook``, checkpoints, resuming
CONSOLE_INFO = (r'(Epoch|Iter)\((train|val|test)\)', r'Saving checkpoint at',
                r'resumed epoch: ')

#: mmengine warnings a quiet console leaves to the log file: notices about
#: mmengine's own internals a user cannot act on
CONSOLE_NOISE = (r'"FileClient" will be deprecated',
                 r'"HardDiskBackend" is the alias',
                 r'\S+ is skipped since its requires_grad=False')

#: ``extra`` key of records meant for the log file only (a traceback)
FILE_ONLY = 'mmmask_file_only'

#: ``extra`` key of INFO records a quiet console shows (:func:`tell`)
SHOWN = 'mmmask_shown'

#: the folder whose log calls a quiet console shows: the mmmask package
#: (wherever it is installed)
_OWN_FOLDER = osp.dirname(osp.dirname(osp.abspath(__file__))) + osp.sep

#: folders of the logging machinery between a log call and the handler
_LOGGING_FOLDERS = (osp.dirname(logging.__file__) + osp.sep,
                    osp.dirname(osp.abspath(__file__)) + osp.sep +
                    'tool_logging.py')

_console = dict(mode=None)


def set_console_mode(mode: Optional[str]) -> None:
    """Choose what the console of the runners built from now on shows.

    Args:
        mode (str | None): ``'quiet'``: progress, results, warnings and
            mmmask's messages (:class:`QuietConsoleFilter`); ``'verbose'``:
            mmengine's whole log; None: leave mmengine's loggers alone
            (the default, e.g. under mmpretrain's own ``tools/train.py``).
    """
    if mode not in (None, 'quiet', 'verbose'):
        raise ValueError(f"console mode {mode!r}: use 'quiet', 'verbose' "
                         'or None')
    _console['mode'] = mode


@contextmanager
def console_mode(mode: Optional[str]) -> Iterator[None]:
    """:func:`set_console_mode` for a block (a tool's ``main``); the mode
    before it comes back after it, also after an error."""
    previous = _console['mode']
    set_console_mode(mode)
    try:
        yield
    finally:
        _console['mode'] = previous


def _log_caller_file() -> str:
    """The file of the code that made the log call being handled (through
    ``logger.info`` or mmengine's ``print_log``)."""
    frame = sys._getframe(1)
    mmengine_logging = osp.join('mmengine', 'logging') + osp.sep
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith(_LOGGING_FOLDERS)
                or mmengine_logging in name):
            return name
        frame = frame.f_back
    return ''


def _matches(patterns, message: str) -> bool:
    return any(re.match(p, message) for p in patterns)


class QuietConsoleFilter(logging.Filter):
    """What the console of a training run shows by default.

    Shown: INFO lines of mmmask's own code (schedules, cache refreshes,
    resuming), the tools' set-up and result lines (:func:`tell`),
    mmengine's progress and result lines
    (:data:`CONSOLE_INFO`) and every warning and error except
    :data:`CONSOLE_NOISE`. Everything else (the environment, the config,
    the hook order, per-parameter lines) goes to the log file only.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, FILE_ONLY, False):
            return False
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            return not _matches(CONSOLE_NOISE, message)
        return (getattr(record, SHOWN, False)
                or _matches(CONSOLE_INFO, message)
                or _log_caller_file().startswith(_OWN_FOLDER))


class FileOnlyFilter(logging.Filter):
    """Keeps records meant for the log file only off the console."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(record, FILE_ONLY, False)


def tell(logger: logging.Logger, message: str) -> None:
    """Log an INFO line that a quiet console shows too (a tool's set-up and
    result lines), wherever the tool's script lives."""
    logger.info(message, extra={SHOWN: True})


def console_handlers(logger: logging.Logger) -> List[logging.Handler]:
    """The handlers of a logger that write to the console (not files)."""
    return [h for h in logger.handlers
            if isinstance(h, logging.StreamHandler)
            and not isinstance(h, logging.FileHandler)]


def file_handlers(logger: logging.Logger) -> List[logging.FileHandler]:
    """The handlers of a logger that write log files."""
    return [h for h in logger.handlers
            if isinstance(h, logging.FileHandler)]


def apply_console_mode(logger: logging.Logger) -> logging.Logger:
    """Filter a runner's console as :func:`set_console_mode` chose (no
    change when no mode was chosen). Idempotent.

    Returns:
        logging.Logger: ``logger``.
    """
    mode = _console['mode']
    if mode is None:
        return logger
    kind = QuietConsoleFilter if mode == 'quiet' else FileOnlyFilter
    for handler in console_handlers(logger):
        for old in [f for f in handler.filters
                    if isinstance(f, (QuietConsoleFilter, FileOnlyFilter))]:
            handler.removeFilter(old)
        handler.addFilter(kind())
    return logger


def log_file_of(logger: Optional[logging.Logger]) -> Optional[str]:
    """The file a logger writes, or None."""
    handlers = file_handlers(logger) if logger is not None else []
    return handlers[0].baseFilename if handlers else None
