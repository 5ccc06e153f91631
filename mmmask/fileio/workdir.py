"""Protect the files of an earlier run in a work dir from a new run, and
say how a run whose write failed continues."""
import fnmatch
import os
import os.path as osp
import time
from typing import List, Optional

from mmmask.errors import WorkDirInUseError

#: what a training run leaves that a new run would overwrite or replace:
#: checkpoints, the auto-resume pointer and the strategies' caches (AMT
#: saliency, image caches: ``*.bin``)
EARLIER_RUN_PATTERNS = ('*.pth', 'last_checkpoint', '*.bin')


def earlier_run_files(work_dir: str) -> List[str]:
    """The files of an earlier run directly in ``work_dir``, sorted (none
    when the folder does not exist)."""
    if not osp.isdir(work_dir):
        return []
    return sorted(
        name for name in os.listdir(work_dir)
        if osp.isfile(osp.join(work_dir, name)) and any(
            fnmatch.fnmatch(name, p) for p in EARLIER_RUN_PATTERNS))


def check_work_dir(work_dir: str, resume: bool, overwrite: bool) -> None:
    """Refuse a fresh run into a work dir that holds an earlier run's files.

    Args:
        work_dir (str): The run's work dir.
        resume (bool): The run continues the earlier one (``--resume``).
        overwrite (bool): The user allowed overwriting
            (``--overwrite-work-dir``).

    Raises:
        FileExistsError: Naming the folder, its files and both ways on.
    """
    if resume or overwrite:
        return
    found = earlier_run_files(work_dir)
    if not found:
        return
    shown = ', '.join(found[:6]) + (', ...' if len(found) > 6 else '')
    raise WorkDirInUseError(
        f'work dir {work_dir} holds files of an earlier run ({shown}); a '
        'new run would overwrite its checkpoints and replace its caches. '
        'Continue that run with --resume, or start over in the same folder '
        'with --overwrite-work-dir (the earlier files are then overwritten '
        'as the new run goes), or give another --work-dir.')


def retire_resume_pointer(work_dir: str) -> Optional[str]:
    """Rename an earlier run's ``last_checkpoint`` before a run started with
    ``--overwrite-work-dir``.

    Until the new run saves its first checkpoint, the pointer would name the
    earlier run's checkpoint, and an auto-resume (``--resume``) after a crash
    would continue that run under the new config. Renamed, an auto-resume
    instead names the newest checkpoint in the folder and asks which to use.
    Nothing is deleted: the pointer becomes
    ``last_checkpoint.before-overwrite-<time>``.

    Returns:
        str | None: The new name of the pointer, None when there was none.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    stamp = time.strftime('%Y%m%d_%H%M%S')
    target = f'{pointer}.before-overwrite-{stamp}'
    n = 1
    while osp.exists(target):
        target = f'{pointer}.before-overwrite-{stamp}-{n}'
        n += 1
    try:
        os.rename(pointer, target)
    except FileNotFoundError:  # another process renamed it first
        return None
    return target


def last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names (what an
    auto-resume continues from), or None."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            return f.read().strip() or None
    except (FileNotFoundError, NotADirectoryError):
        return None


def continue_hint(work_dir: str, config: Optional[str] = None) -> str:
    """What a run whose file write failed (disk full...) does next: the
    exact ``--resume`` command, or how to start again.

    Args:
        work_dir (str): The run's work dir.
        config (str, optional): The config file the run was started with;
            ``CONFIG`` when unknown.

    Returns:
        str: One or two sentences for the end of the error message.
    """
    config = config or 'CONFIG'
    last = last_checkpoint(work_dir)
    if last is None:
        return ('Free disk space or fix the cause, then start the run '
                'again (no checkpoint was written yet): tools/train.py '
                f'{config} --work-dir {work_dir} --overwrite-work-dir')
    return ('Free disk space or fix the cause, then continue the run from '
            f'its last checkpoint: tools/train.py {config} --work-dir '
            f'{work_dir} --resume {last} (with the launcher and options '
            'the run was started with)')
