"""Pictures and benchmark of the evolving maskers (EHM, EPM)."""
import os.path as osp

import numpy as np
from PIL import Image

from tests.test_tools.test_tools import ROOT, tool

DEMO = osp.join(ROOT, 'configs', 'demo')
EHM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py')
EPM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_epm-mask_1xb32-60e_shapes-64px.py')


def test_visualize_masks_at_progress_values_with_regions(tmp_path,
                                                         shapes_dir):
    out = tmp_path / 'evolving.png'
    res = tool('tools/analysis/visualize_masks.py', EHM_DEMO, EPM_DEMO,
               '--images', shapes_dir, '--num', '1', '--progress', '0', '1',
               '--segments', '--out', str(out))
    assert 'saved' in res.stdout
    img = np.asarray(Image.open(out))
    # 2 configs x 2 progress values x (mask row + region row) = 8 rows
    assert img.shape[0] > 8 * 100


def test_benchmark_prints_costs_and_tree_speed():
    res = tool('tools/analysis/benchmark_evolving_masks.py', '--config',
               EHM_DEMO, '--batch', '2', '--tree-batch', '4', '--reps', '1')
    text = res.stdout
    for key in ('training step', 'EHM masker', 'EPM masker', '% of a step',
                'FLOPs', 'images probed', 'whole run', 'scipy loop',
                'speed-up'):
        assert key in text, text
