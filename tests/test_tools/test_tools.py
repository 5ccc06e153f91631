"""The command-line tools: pictures and reconstructions.

Training's command line, also on two CPU ranks, is tested elsewhere:
``test_user_errors.py`` (every refusal of ``tools/train.py``, and the
script run as a user runs it), ``test_amt_refresh.py`` and
``test_non_finite_loss.py`` (``tools/dist_train.sh`` on 2 gloo ranks),
``test_distributed.py`` (2 ranks x batch 8 on 32 images: 2 iterations per
epoch in the checkpoint).
"""
import os.path as osp
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

from mmpretrain.registry import MODELS

from mmmask.masks import random_scores, select_by_score
from mmmask.visualization import mae_reconstruct
from tests.helpers import tiny_mae_cfg, tool_module

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_CFG = osp.join(ROOT, 'configs', 'demo',
                    'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')


def tool(*args, env=None, check=True):
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    if check and out.returncode != 0:
        raise AssertionError(out.stdout[-3000:] + out.stderr[-3000:])
    return out


def test_visualize_masks_writes_png(tmp_path, shapes_dir, capsys):
    """In-process (the script as a user runs it, with its console output:
    test_mask_pictures.py)."""
    out = tmp_path / 'masks.png'
    tool_module('tools/analysis/visualize_masks.py').main([
        DEMO_CFG, '--images', shapes_dir, '--num', '3', '--out', str(out)])
    assert f'saved {out}' in capsys.readouterr().out
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
