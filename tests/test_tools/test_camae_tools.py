"""The mask picture tool with a two-view CAMAE config."""
import os.path as osp

import numpy as np
from PIL import Image

from tests.helpers import ROOT, tool_module

CAMAE_DEMO = osp.join(ROOT, 'configs', 'demo',
                      'camae_vit-tiny-p8_idm-plb_1xb32-20e_shapes-64px.py')


def test_visualize_masks_of_camae_draws_the_reconstructed_view(
        tmp_path, shapes_dir, capsys):
    """In-process: the script's console output is tested with the MAE
    demos (test_mask_pictures.py)."""
    out = tmp_path / 'masks.png'
    tool_module('tools/analysis/visualize_masks.py').main([
        CAMAE_DEMO, '--images', shapes_dir, '--num', '2', '--out', str(out)])
    assert f'saved {out}' in capsys.readouterr().out
    img = np.asarray(Image.open(out))
    assert img.ndim == 3 and img.shape[1] > 100
