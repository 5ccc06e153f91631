"""The mask picture tool with a two-view CAMAE config."""
import os
import os.path as osp
import subprocess
import sys

import numpy as np
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CAMAE_DEMO = osp.join(ROOT, 'configs', 'demo',
                      'camae_vit-tiny-p8_idm-plb_1xb32-20e_shapes-64px.py')


def test_visualize_masks_of_camae_draws_the_reconstructed_view(
        tmp_path, shapes_dir):
    out = tmp_path / 'masks.png'
    res = subprocess.run(
        [sys.executable, 'tools/analysis/visualize_masks.py', CAMAE_DEMO,
         '--images', shapes_dir, '--num', '2', '--out', str(out)],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT),
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[1] > 100
