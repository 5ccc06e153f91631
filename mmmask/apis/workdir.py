"""Protect the files of an earlier run in a work dir from a new run."""
import fnmatch
import os
import os.path as osp
from typing import List

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
    raise FileExistsError(
        f'work dir {work_dir} holds files of an earlier run ({shown}); a '
        'new run would overwrite its checkpoints and replace its caches. '
        'Continue that run with --resume, or start over in the same folder '
        'with --overwrite-work-dir (the earlier files are then overwritten '
        'as the new run goes), or give another --work-dir.')
