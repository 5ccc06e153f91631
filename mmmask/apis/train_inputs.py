"""Checks of what a training command names on disk: the config file and
the data folders of its loaders, before anything is built.

A config path that is a folder used to be reported as missing, and a
missing data root surfaced as a raw ``FileNotFoundError`` for the folder
from deep inside the dataset's ``load_data_list``, naming no config key.
"""
import os
import os.path as osp
from typing import Iterator, List, Optional, Tuple

from mmmask.errors import FolderGivenError, MissingInputError

#: how to make the data folders the demo configs read
DEMO_DATA = {
    'shapes-64px-labelled': 'python tools/misc/make_shapes_dataset.py '
    '--labelled --out {path}',
    'shapes-64px': 'python tools/misc/make_shapes_dataset.py --out {path} '
    '--num 512 --size 64 (or make demo)',
    'rects-ade20k-64px': 'python tools/misc/make_downstream_data.py',
    'rects-coco-64px': 'python tools/misc/make_downstream_data.py',
}

#: the loaders a training run reads (validation when it is on)
LOADERS = ('train_dataloader', 'val_dataloader')


def check_config_file(path: str) -> None:
    """Refuse a config path that is missing or a folder, by name.

    Raises:
        IsADirectoryError: For a folder; the message lists configs in it.
        FileNotFoundError: For a path that does not exist.
    """
    if osp.isdir(path):
        found = sorted(n for n in os.listdir(path) if n.endswith('.py'))
        shown = ', '.join(found[:4]) + (', ...' if len(found) > 4 else '')
        inside = (f' (it holds {shown})' if found else
                  ' (it holds no .py file)')
        raise FolderGivenError(
            f'config {path} is a folder, not a config file{inside}: give '
            'the path of one config .py file, e.g. '
            f'{osp.join(path, found[0]) if found else "configs/demo/..."}')
    if not osp.isfile(path):
        raise MissingInputError(
            f'config file {path} does not exist: give the path of a config '
            '.py file (e.g. one under configs/)')


def _datasets(cfg, key: str) -> Iterator[Tuple[str, dict]]:
    """``(config key, dataset config)`` of a loader's dataset and of the
    datasets it wraps (``dataset=`` of a repeat or class-balanced wrapper,
    ``datasets=[...]`` of a concatenation)."""
    loader = cfg.get(key)
    dataset = loader.get('dataset') if hasattr(loader, 'get') else None
    if not hasattr(dataset, 'get'):
        return
    todo = [(f'{key}.dataset', dataset)]
    while todo:
        name, dataset = todo.pop(0)
        yield name, dataset
        inner = dataset.get('dataset')
        if hasattr(inner, 'get'):
            todo.append((f'{name}.dataset', inner))
        for i, part in enumerate(dataset.get('datasets') or []):
            if hasattr(part, 'get'):
                todo.append((f'{name}.datasets.{i}', part))


def _is_local(path) -> bool:
    return isinstance(path, str) and bool(path) and '://' not in path


def _how_to_make(path: str) -> Optional[str]:
    name = osp.basename(osp.normpath(path))
    command = DEMO_DATA.get(name)
    return None if command is None else command.format(path=path)


def missing_data(cfg) -> List[Tuple[str, str, str]]:
    """The data paths of the run's loaders that do not exist.

    Checks each dataset's ``data_root`` (a folder), and, when it exists,
    its ``data_prefix`` folders and ``ann_file`` (joined to the root as
    mmengine does).

    Returns:
        list[tuple[str, str, str]]: ``(config key, path, what it is)``.
    """
    missing = []
    for key in LOADERS:
        if key == 'val_dataloader' and not cfg.get('val_cfg'):
            continue
        for name, dataset in _datasets(cfg, key):
            root = dataset.get('data_root') or ''
            if _is_local(root) and not osp.isdir(root):
                missing.append((f'{name}.data_root', root, 'data root'))
                continue
            prefix = dataset.get('data_prefix')
            prefixes = prefix.items() if hasattr(prefix, 'items') else \
                [('', prefix)]
            for sub, folder in prefixes:
                if not _is_local(folder):
                    continue
                path = osp.join(root, folder)
                if not osp.isdir(path):
                    where = f'{name}.data_prefix' + (f'.{sub}' if sub else '')
                    missing.append((where, path, 'data folder'))
            ann = dataset.get('ann_file')
            if _is_local(ann):
                path = osp.join(root, ann)
                if not osp.isfile(path):
                    missing.append((f'{name}.ann_file', path,
                                    'annotation file'))
    return missing


def check_data_roots(cfg) -> None:
    """Refuse a run whose loaders name data that is not there, before the
    runner is built.

    Raises:
        FileNotFoundError: Naming the config key, the path, and how to make
            or point to the data.
    """
    missing = missing_data(cfg)
    if not missing:
        return
    key, path, what = missing[0]
    make = _how_to_make(path)
    fix = (f'Make the demo data with {make}, or point' if make else
           'Put the data there, or point')
    more = (f' ({len(missing) - 1} more path(s) of the config are missing '
            'too: ' + ', '.join(k for k, _, _ in missing[1:]) + ')'
            if len(missing) > 1 else '')
    raise MissingInputError(
        f'{key} = {path!r}: the {what} does not exist (seen from '
        f'{os.getcwd()}). {fix} the config at your data: --cfg-options '
        f'{key}=/path/to/data{more}')
