"""mmpretrain's own launchers train our demo config on a CPU machine.

``mim train mmpretrain CONFIG --launcher pytorch --gpus 2`` runs
``python -m torch.distributed.launch --nproc_per_node=2 --master_port=P
<mmpretrain>/tools/train.py CONFIG --launcher pytorch`` (mim's
``commands/train.py``), which is what mmpretrain's ``dist_train.sh`` runs
too; mim itself is not installed here. Both launches use the mmpretrain
wheel's own ``.mim/tools/train.py``: nothing of ours but the config, whose
``runner_type`` brings the CPU handling (gloo, DDP without ``device_ids``).
Without it mmengine fails with DDP's ``device_ids`` error on a machine
without a GPU.
"""
import os
import os.path as osp
import sys

import mmpretrain
import pytest
import torch

from tests.helpers import ROOT, _launch, dist_env

TOOLS = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'tools')
DEMO = osp.join(ROOT, 'configs', 'demo',
                'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')


def one_epoch_args(work_dir: str, data_root: str) -> list:
    """train.py arguments: one epoch of the demo on the test images."""
    return [
        '--work-dir', work_dir, '--no-persistent-workers', '--cfg-options',
        f'train_dataloader.dataset.data_root={data_root}',
        'train_dataloader.num_workers=0', 'train_cfg.max_epochs=1',
        'log_level=WARNING'
    ]


@pytest.mark.parametrize('launch', ['dist_train.sh', 'torchrun'])
def test_mmpretrain_launchers_train_the_demo_on_cpu(tmp_path, shapes_dir,
                                                    launch):
    work = str(tmp_path / 'work')

    def make_cmd():
        env = dist_env()
        env['PATH'] = osp.dirname(sys.executable) + os.pathsep + env['PATH']
        env['CUDA_VISIBLE_DEVICES'] = ''  # a CPU machine, also on a GPU one
        args = [DEMO] + (['--launcher', 'pytorch'] if launch == 'torchrun'
                         else []) + one_epoch_args(work, shapes_dir)
        if launch == 'dist_train.sh':
            cmd = ['bash', osp.join(TOOLS, 'dist_train.sh'), DEMO, '2']
            cmd += args[1:]
        else:
            cmd = [sys.executable, '-m', 'torch.distributed.run',
                   '--nproc_per_node=2', f'--master_port={env["PORT"]}',
                   osp.join(TOOLS, 'train.py')] + args
        return cmd, env

    _launch(make_cmd, timeout=400)
    checkpoint = torch.load(osp.join(work, 'epoch_1.pth'), weights_only=True)
    assert checkpoint['meta']['epoch'] == 1
    assert "runner_type = 'mmpretrain.CheckedRunner'" in \
        checkpoint['meta']['cfg']
    with open(osp.join(work, 'last_checkpoint')) as f:
        assert f.read() == osp.join(work, 'epoch_1.pth')
