"""How every command-line tool ends: a user's mistake as one paragraph.

Each tool's script runs its ``main`` through :func:`run_tool`::

    if __name__ == '__main__':
        run_tool(main)

A :class:`~mmmask.errors.UserError` (a refusal whose message names what was
wrong and the fix: a missing file, a used work dir, a corrupt checkpoint, a
misspelt type...) is printed as ``error: <message>`` on stderr, without a
traceback, and the tool exits with its exit code (1; the converters 2).
The traceback goes to the run's log file when there is one (training) and
to the console with ``--verbose``. Any other exception is a bug: it keeps
its full traceback (and exit code 1), as Python prints it.

``main`` itself still raises: tests and other programs that call it see
the exceptions.
"""
import logging
import sys
import traceback
from typing import Callable, Optional, Set

from mmmask.engine.tool_logging import FILE_ONLY, file_handlers
from mmmask.errors import UserError

#: the flag that shows tracebacks (and mmengine's full log)
VERBOSE_FLAG = '--verbose'

#: how torch re-raises an error of a loader worker in the main process
_WORKER_PREFIX = 'Caught '


def user_message(err: BaseException) -> str:
    """The paragraph to print for a user's mistake.

    An error raised in a data loader worker reaches the main process as
    ``Caught X in DataLoader worker process 0. Original Traceback ...``:
    only the original message is kept.
    """
    message = str(err).strip()
    if message.startswith(_WORKER_PREFIX) and 'Original Traceback' in message:
        kind = type(err)
        for name in (f'{kind.__module__}.{kind.__qualname__}',
                     kind.__qualname__):
            head, found, tail = message.rpartition(f'\n{name}: ')
            if found:
                return tail.strip()
    return message


def logger_names() -> Set[str]:
    """The names of mmengine's loggers so far."""
    from mmengine.logging import MMLogger
    return set(MMLogger._instance_dict)


def run_log_file(before: Set[str]) -> Optional[logging.FileHandler]:
    """The file handler of the newest mmengine logger made since ``before``
    (:func:`logger_names`) that writes a file: the log of the run the tool
    started. None when it started none; no logger is created."""
    from mmengine.logging import MMLogger
    for name, logger in reversed(list(MMLogger._instance_dict.items())):
        handlers = file_handlers(logger)
        if name not in before and handlers:
            return handlers[0]
    return None


def log_traceback(err: BaseException, before: Set[str]) -> Optional[str]:
    """Write ``err``'s traceback into the log file of the run the tool
    started (not the console).

    Args:
        err (BaseException): The error.
        before (set[str]): :func:`logger_names` when the tool started.

    Returns:
        str | None: The log file, None when no run writes one.
    """
    handler = run_log_file(before)
    if handler is None:
        return None
    record = logging.LogRecord(
        'mmmask', logging.ERROR, __file__, 0,
        f'{type(err).__name__}: the run stopped', None,
        (type(err), err, err.__traceback__))
    setattr(record, FILE_ONLY, True)
    handler.handle(record)
    handler.flush()
    return handler.baseFilename


def run_tool(main: Callable[[], Optional[int]], exit_code: int = 1) -> None:
    """Run a tool's ``main`` and exit: 0 (or what it returns) on success,
    ``exit_code`` after printing a user's mistake as one paragraph.

    Args:
        main (Callable): The tool's ``main``; it reads ``sys.argv`` itself.
        exit_code (int): Exit code of a :class:`~mmmask.errors.UserError`
            (1; the converters use 2, as for their other refusals).
    """
    verbose = VERBOSE_FLAG in sys.argv[1:]
    before = logger_names()
    try:
        code = main()
    except UserError as err:
        log_file = log_traceback(err, before)
        if verbose:
            traceback.print_exc()
        where = (f' (traceback in {log_file})'
                 if log_file and not verbose else '')
        print(f'error: {user_message(err)}{where}', file=sys.stderr)
        sys.exit(exit_code)
    except Exception as err:  # a bug: Python prints the whole traceback
        log_traceback(err, before)
        raise
    sys.exit(code if isinstance(code, int) else 0)
