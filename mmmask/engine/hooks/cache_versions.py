"""Which per-image cache versions the live checkpoints of a run reference.

A refresh hook records in every checkpoint the cache version it trained on
(``checkpoint[state_key]['file']``, the version file's name). A version is
*live* while a checkpoint in the run's checkpoint folders names it: those
files must stay so that a resume reads the same bytes; the others may go.
The checkpoints are read with ``torch.load(weights_only=True, mmap=True)``
(the allow-list of :mod:`mmmask.compat`, as every resume; tensors mapped,
not read), each file once (its inode, size and modification time are
remembered). A checkpoint that does not load that way cannot be resumed
either and references nothing.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Set, Tuple

import torch
from mmengine.dist import broadcast_object_list, get_dist_info
from mmengine.hooks import CheckpointHook

#: what identifies one state of a checkpoint file
_Stamp = Tuple[int, int, int]


def checkpoint_folders(runner) -> List[str]:
    """The local folders the run's checkpoints are in: the work dir and
    each ``CheckpointHook``'s ``out_dir`` (as given, or joined with the work
    dir's name as mmengine does). Remote ``out_dir`` s are left out."""
    work_dir = osp.abspath(runner.work_dir)
    folders = [work_dir]
    for hook in getattr(runner, 'hooks', ()):
        out_dir = getattr(hook, 'out_dir', None)
        if not isinstance(hook, CheckpointHook) or not out_dir:
            continue
        if '://' in str(out_dir):
            continue
        name = osp.basename(work_dir.rstrip(osp.sep))
        for folder in (out_dir, osp.join(out_dir, name)):
            folder = osp.abspath(folder)
            if osp.isdir(folder) and folder not in folders:
                folders.append(folder)
    return folders


class CheckpointReferences:
    """The cache version files that checkpoints name, read once per file.

    Args:
        state_key (str): The refresh hook's key in checkpoints.
        default_name (callable): ``(version, digest) -> file name`` for a
            checkpoint written before checkpoints named the file (it holds
            ``version`` and ``digest`` only).
    """

    def __init__(self, state_key: str, default_name) -> None:
        self.state_key = state_key
        self.default_name = default_name
        self._seen: Dict[str, Tuple[_Stamp, Optional[str]]] = {}

    def of_checkpoint(self, path: str) -> Optional[str]:
        """The version file a checkpoint names, or None (no cache state,
        version 0, or a file that does not load)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        seen = self._seen.get(path)
        if seen is not None and seen[0] == stamp:
            return seen[1]
        name = None
        try:
            ckpt = torch.load(path, map_location='cpu', weights_only=True,
                              mmap=True)
            state = ckpt.get(self.state_key) if isinstance(ckpt,
                                                           dict) else None
            del ckpt
        except Exception:  # truncated, corrupt, unsafe: cannot be resumed
            state = None
        if isinstance(state, dict) and int(state.get('version') or 0) > 0:
            name = state.get('file')
            if name is None and state.get('digest'):
                name = self.default_name(int(state['version']),
                                         state['digest'])
        self._seen[path] = (stamp, name)
        return name

    def in_folders(self, folders: List[str]) -> Set[str]:
        """The version files the ``*.pth`` checkpoints in ``folders`` name."""
        names = set()
        for folder in folders:
            try:
                entries = sorted(os.listdir(folder))
            except OSError:
                continue
            for entry in entries:
                path = osp.join(folder, entry)
                if entry.endswith('.pth') and osp.isfile(path):
                    name = self.of_checkpoint(path)
                    if name is not None:
                        names.add(osp.basename(name))
        gone = [p for p in self._seen if osp.dirname(p) in folders
                and not osp.exists(p)]
        for path in gone:
            del self._seen[path]
        return names

    def live(self, runner) -> Set[str]:
        """The version files the run's live checkpoints name, as rank 0
        (which writes the checkpoints) sees them, on every rank (a
        collective call: every rank must make it)."""
        rank, world = get_dist_info()
        names = sorted(self.in_folders(checkpoint_folders(runner))) \
            if rank == 0 else None
        if world > 1:
            box = [names]
            broadcast_object_list(box, src=0)
            names = box[0]
        return set(names)
