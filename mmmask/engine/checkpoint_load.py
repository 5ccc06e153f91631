"""Checkpoint loading that refuses corrupt or unfitting state, by name.

The checks :class:`mmmask.engine.CheckedRunner` makes where mmengine 0.10.7
loads whatever unpickles:

1. **Every checkpoint load** (``resume``, ``load_from``, and inside the
   runner every ``load_checkpoint`` and ``init_cfg=dict(type='Pretrained')``)
   reads through :func:`mmmask.fileio.checkpoint_sources.load_checked`, from
   a local path or any scheme: the file must be complete, pass its zip
   checksums, unpickle with ``weights_only=True`` and hold only finite
   tensors; otherwise :class:`CorruptCheckpointError` names the file (or
   URL) and the first bad key.
2. **Resume** (``--resume``): the checkpoint must be a training checkpoint
   (``meta.epoch``, ``meta.iter``, ``message_hub``), and its state dict must
   fit the model exactly (mmengine loads what fits and then fails with
   ``KeyError: 'epoch'`` or an optimizer error, or resumes a half-loaded
   model).
3. **load_from**: a checkpoint that fits the model only in part is loaded
   as mmengine does, with a warning that names the file and counts (and
   shows) the missing, unused and reshaped tensors; one that fits in
   nothing is refused.
4. **Auto-resume** (``--resume`` without a path): the checkpoint named in
   ``last_checkpoint`` is used; when it is broken the run is refused (not
   silently resumed from an older one), and the message names it and the
   newest loadable checkpoint before it. A ``last_checkpoint`` naming a
   file that is gone, or checkpoints without a ``last_checkpoint``, are
   refused too instead of starting from scratch over them.
"""
import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence

from mmengine.logging import print_log
from mmengine.runner import checkpoint as mm_checkpoint

from mmmask.fileio.checkpoint import CorruptCheckpointError, load_verified
from mmmask.fileio.checkpoint_sources import load_checked
from mmmask.errors import InvalidInputError, MissingInputError
from .checkpoint_save import LAST_CHECKPOINT, last_good_checkpoint
from .hooks.utils import unwrap_model

#: keys mmengine ignores when it reports missing keys
IGNORED_MISSING = ('num_batches_tracked', )


def _examples(keys: Sequence[str], n: int = 3) -> str:
    shown = ', '.join(keys[:n])
    return f'{shown}, ...' if len(keys) > n else shown


def compare_state(model, checkpoint: dict,
                  revise_keys: Sequence = ((r'^module\.', ''), )) -> Dict:
    """How a checkpoint's state dict fits a model.

    Returns:
        dict: ``missing`` (model keys not in the checkpoint), ``unexpected``
        (checkpoint keys not in the model), ``reshaped`` (in both, other
        shapes, as ``'key (ckpt shape vs model shape)'``), ``loaded`` (the
        number of model tensors that load) and ``total``.
    """
    state = checkpoint.get('state_dict', checkpoint)
    for pattern, repl in revise_keys:
        state = {re.sub(pattern, repl, k): v for k, v in state.items()}
    own = model.state_dict()
    missing = [k for k in own if k not in state
               and not any(s in k for s in IGNORED_MISSING)]
    unexpected = [k for k in state if k not in own]
    reshaped = [
        f'{k} ({tuple(state[k].shape)} vs {tuple(own[k].shape)})'
        for k in own if k in state and hasattr(state[k], 'shape')
        and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    return dict(missing=missing, unexpected=unexpected, reshaped=reshaped,
                loaded=len(own) - len(missing) - len(reshaped),
                total=len(own))


def describe_fit(report: Dict) -> str:
    """The mismatches of :func:`compare_state`, for a message."""
    parts = []
    if report['missing']:
        parts.append(f'{len(report["missing"])} model tensors are not in it'
                     f' ({_examples(report["missing"])})')
    if report['unexpected']:
        parts.append(f'{len(report["unexpected"])} of its tensors are not '
                     f'in the model ({_examples(report["unexpected"])})')
    if report['reshaped']:
        parts.append(f'{len(report["reshaped"])} have other shapes '
                     f'({_examples(report["reshaped"], 2)})')
    return '; '.join(parts)


def check_training_checkpoint(checkpoint, filename: str) -> None:
    """Refuse to resume from a checkpoint that tools/train.py did not write.

    Raises:
        ValueError: Naming the file, what is missing and the fix.
    """
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    missing = [k for k in ('epoch', 'iter')
               if not isinstance(meta, dict) or k not in meta]
    if 'message_hub' not in checkpoint:
        missing.append('message_hub')
    if not missing:
        return
    if isinstance(meta, dict) and meta.get('converted_from'):
        origin = (f' It is a backbone converted from '
                  f'{meta["converted_from"]} for {meta.get("target")}.')
        start = ('To start the encoder from it, set '
                 "model.backbone.init_cfg=dict(type='Pretrained', "
                 f"checkpoint='{filename}') and run without --resume.")
    else:
        origin = ''
        start = ('To start from these weights instead, give it as load_from '
                 f'(--cfg-options load_from={filename}) without --resume.')
    names = [k if k == 'message_hub' else f'meta.{k}' for k in missing]
    raise InvalidInputError(
        f'--resume: {filename} is not a training checkpoint: it has no '
        f'{", ".join(names)} (its top-level keys: '
        f'{", ".join(map(str, checkpoint))}).{origin} Resume needs a '
        'checkpoint written by tools/train.py (epoch_*.pth / iter_*.pth in '
        f'the work dir). {start}')


def check_resume_fit(report: Dict, filename: str, model) -> None:
    """Refuse to resume into a model the checkpoint does not fit exactly."""
    if not (report['missing'] or report['unexpected'] or report['reshaped']):
        return
    raise InvalidInputError(
        f'--resume: {filename} does not fit this model '
        f'({type(model).__name__}): {describe_fit(report)}. It was written '
        'by another architecture or config; resume only with the config '
        'that wrote it. To start this model from the tensors that fit, '
        f'use load_from={filename} without --resume.')


def report_partial_load(runner, filename: str, report: Dict, model) -> None:
    """Warn about (or refuse) a ``load_from`` that fits only in part."""
    if report['loaded'] == 0 and report['total'] > 0:
        raise InvalidInputError(
            f'load_from: {filename} has no tensor that fits this model '
            f'({type(model).__name__}): {describe_fit(report)}. A backbone '
            'converted by tools/model_converters has no "backbone." '
            "prefix: load it with model.backbone.init_cfg=dict(type="
            "'Pretrained', checkpoint=...) instead; otherwise give a "
            'checkpoint of this model.')
    if report['missing'] or report['unexpected'] or report['reshaped']:
        runner.logger.warning(
            f'load_from: {filename} fits this model '
            f'({type(model).__name__}) only in part: {report["loaded"]} of '
            f'{report["total"]} tensors loaded; {describe_fit(report)}. '
            'The tensors not loaded keep their initial values. This is '
            'expected when one algorithm starts from another\'s encoder '
            '(e.g. MAE from a SimMIM or CAMAE checkpoint); otherwise give a '
            'checkpoint written with this config.')


def load_checkpoint_checked(runner,
                            filename: str,
                            map_location='cpu',
                            strict: bool = False,
                            revise_keys: Sequence = ((r'^module.', ''), ),
                            resuming: bool = False) -> dict:
    """``Runner.load_checkpoint`` with the checks of the module doc.

    Args:
        runner (Runner): Its model is loaded; its hooks get
            ``after_load_checkpoint``.
        filename (str): A local path or URL (any scheme of
            :func:`~mmmask.fileio.checkpoint_sources.load_checked`).
        resuming (bool): Whether this load is a resume (it must be a
            training checkpoint that fits the model exactly).

    Returns:
        dict: The checkpoint, as mmengine returns it.
    """
    what = '--resume' if resuming else 'load_from'
    checkpoint = load_checked(filename, what, map_location=map_location)
    if resuming:
        check_training_checkpoint(checkpoint, filename)
    runner.call_hook('after_load_checkpoint', checkpoint=checkpoint)
    model = unwrap_model(runner.model)
    report = compare_state(model, checkpoint, revise_keys)
    if resuming:
        check_resume_fit(report, filename, model)
    else:
        report_partial_load(runner, filename, report, model)
    checkpoint = mm_checkpoint._load_checkpoint_to_model(
        model, checkpoint, strict, revise_keys=revise_keys)
    runner._has_loaded = True
    runner.logger.info(f'Load checkpoint from {filename}')
    return checkpoint


def checkpoints_in(work_dir: str) -> List[str]:
    """The ``*.pth`` files of a folder, newest first (by modification)."""
    paths = [p for p in glob.glob(osp.join(work_dir, '*.pth'))
             if osp.isfile(p)]
    return sorted(paths, key=lambda p: (os.stat(p).st_mtime, p),
                  reverse=True)


def newest_loadable(work_dir: str, exclude: str) -> Optional[str]:
    """The newest training checkpoint in ``work_dir`` that loads, other than
    ``exclude``."""
    for path in checkpoints_in(work_dir):
        if osp.abspath(path) == osp.abspath(exclude):
            continue
        try:
            checkpoint = load_verified(path, 'checkpoint')
            check_training_checkpoint(checkpoint, path)
        except (ValueError, OSError):
            continue
        return path
    return None


def find_latest_checkpoint(path: str) -> Optional[str]:
    """The checkpoint auto-resume continues from (mmengine's
    ``find_latest_checkpoint``, which returns a missing file as is and
    starts from scratch over checkpoints without ``last_checkpoint``).

    Raises:
        FileNotFoundError: If ``last_checkpoint`` names a file that is gone
            (and is not beside it), or checkpoints exist without it.
    """
    save_file = osp.join(path, LAST_CHECKPOINT)
    if not osp.isfile(save_file):
        found = checkpoints_in(path)
        if found:
            raise MissingInputError(
                f'--resume: {path} holds checkpoints ({_examples(found)}) '
                f'but no {LAST_CHECKPOINT} file naming the one to continue '
                f'from: give it explicitly, e.g. --resume {found[0]}')
        print_log(f'--resume: no checkpoint in {path}; starting from '
                  'scratch.', logger='current')
        return None
    last = last_good_checkpoint(path) or ''
    if last and osp.isfile(last):
        return last
    beside = osp.join(path, osp.basename(last)) if last else ''
    if beside and osp.isfile(beside):  # the work dir was moved or renamed
        print_log(f'--resume: {save_file} names {last}, which is gone; '
                  f'using {beside} (the work dir was moved).',
                  logger='current')
        return beside
    found = checkpoints_in(path)
    hint = (f'give the checkpoint to continue from, e.g. --resume '
            f'{found[0]}' if found else
            'there is no checkpoint in the work dir: start a new run')
    raise MissingInputError(
        f'--resume: {save_file} names {last!r}, which does not exist: {hint}')


def auto_resume_refusal(work_dir: str,
                        err: CorruptCheckpointError) -> CorruptCheckpointError:
    """The error for a broken checkpoint that auto-resume picked: it names
    the newest loadable checkpoint before it and how to continue."""
    older = newest_loadable(work_dir, exclude=err.path)
    fix = (f'the newest loadable checkpoint before it is {older}: '
           f'continue from it with --resume {older} (the run will '
           f'write {osp.basename(err.path)} again when it gets there; '
           'copy the broken file away first to keep it)' if older else
           'no other checkpoint in the work dir loads: start a new run '
           'with --overwrite-work-dir or into another --work-dir')
    return CorruptCheckpointError(
        f'{err} Auto-resume (--resume without a path) picked it from '
        f'{osp.join(work_dir, LAST_CHECKPOINT)} and refuses to '
        f'fall back on its own: {fix}.', err.path, err.key)
