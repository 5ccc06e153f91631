"""The command-line tools: training (also distributed), pictures, errors."""
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from mmengine.config import Config
from PIL import Image

from mmpretrain.registry import MODELS

from mmmask.masks import random_scores, select_by_score
from mmmask.visualization import mae_reconstruct
from tests.helpers import dist_train, tiny_mae_cfg, tiny_runner_cfg

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(ROOT, 'configs', 'demo',
                    'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')


def tool(*args, env=None, check=True):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(out.stdout[-3000:] + out.stderr[-3000:])
    return out


def test_visualize_masks_writes_png(tmp_path, shapes_dir):
    out = tmp_path / 'masks.png'
    tool('tools/analysis/visualize_masks.py', DEMO_CFG, '--images',
         shapes_dir, '--num', '3', '--out', str(out))
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 300


def test_reconstruction_keeps_visible_patches():
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_cfg())
    model.init_weights()
    plan = select_by_score(random_scores(2, 16), 0.5, 0.25, grid=(4, 4))
    x = torch.randn(2, 3, 32, 32)
    rec = mae_reconstruct(model, x, plan)

    def pixels(flags):
        return flags.view(2, 1, 4, 1, 4, 1).expand(2, 3, 4, 8, 4, 8).reshape(
            2, 3, 32, 32).bool()

    visible = pixels(1 - plan.mask - plan.thrown)
    assert torch.equal(rec['composite'][visible], x[visible])
    assert (rec['composite'][pixels(plan.thrown)] == 0).all()
    masked = pixels(plan.mask)
    assert torch.allclose(rec['composite'][masked], rec['prediction'][masked])
    # norm_pix predictions are mapped back with the true patch statistics:
    # per masked patch, the mean of the prediction's pixels is unchanged by
    # the patch's mean, so shifting a masked patch shifts its reconstruction
    x2 = x + masked.float() * 3.0
    rec2 = mae_reconstruct(model, x2, plan)
    diff = (rec2['composite'] - rec['composite'])[masked]
    assert torch.allclose(diff, torch.full_like(diff, 3.0), atol=1e-4)


def test_train_tool_missing_resume_checkpoint(tmp_path):
    cfg = tmp_path / 'cfg.py'
    Config(tiny_runner_cfg(str(tmp_path), str(tmp_path))).dump(str(cfg))
    out = tool('tools/train.py', str(cfg), '--resume',
               str(tmp_path / 'nope.pth'), check=False)
    assert out.returncode != 0
    assert 'no such checkpoint' in out.stderr


def test_dist_train_two_cpu_processes(tmp_path, shapes_dir):
    cfg = tmp_path / 'tiny.py'
    work = tmp_path / 'work'
    Config(tiny_runner_cfg(str(work), shapes_dir, max_epochs=1)).dump(
        str(cfg))
    dist_train(cfg)
    ckpt = torch.load(work / 'epoch_1.pth')
    # 32 images, 2 ranks x batch 8 -> 2 iterations per epoch
    assert ckpt['meta']['iter'] == 2
