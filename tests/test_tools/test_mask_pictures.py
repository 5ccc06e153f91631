"""Mask pictures and statistics from trained weights: visualize_masks'
warning for attention-driven strategies drawn untrained, the legend,
mask_statistics on every kind of shipped config (bins fitted to the grid,
notes on what a row needs), the encoder loading shared by the tools, the
gallery tool, and quiet output (no per-parameter init log)."""
import glob
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mmmask.apis import build_model, load_config
from mmmask.apis.mask_drawing import (config_rows, load_encoder_weights,
                                      needs_weights_note)
from mmmask.masks.stats import fitting_num_bins
from mmmask.visualization.mask_vis import (OUTLINE_DARK, OUTLINE_LIGHT,
                                           legend_handles, outline_segments,
                                           overlay_plan, plan_legend,
                                           save_image_grid, to_pixels)
from tests.helpers import ROOT, read_package_metafiles_once, tool_module

DEMO = osp.join(ROOT, 'configs', 'demo')
RANDOM_DEMO = osp.join(DEMO,
                       'mae_vit-tiny-p8_random-mask_1xb32-60e_shapes-64px.py')
EHM_DEMO = osp.join(DEMO, 'mae_vit-tiny-p8_ehm-mask_1xb32-60e_shapes-64px.py')
AMT_DEMO = osp.join(DEMO,
                    'mae_vit-tiny-p8_amt-0.45-0.40_1xb32-60e_shapes-64px.py')
SIMMIM_AMT_DEMO = osp.join(
    DEMO, 'simmim_vit-tiny-p8_amt-0.44-0.26_1xb32-30e_shapes-64px.py')
#: what mmengine prints per parameter when a model initialises untold
INIT_LOG = ('Initialized by user-defined', 'Name of parameter')


def run_tool(*args, timeout=300):
    out = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT,
                         env=dict(os.environ, OMP_NUM_THREADS='1'),
                         capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for text in INIT_LOG:
        assert text not in out.stdout + out.stderr
    return out


@pytest.fixture(autouse=True)
def fast_config_loading(monkeypatch):
    """The tests here load the shipped configs many times in-process."""
    read_package_metafiles_once(monkeypatch)


@pytest.fixture(scope='module')
def shapes64(tmp_path_factory):
    """The demo's image set, small."""
    from mmmask.datasets.synthetic import make_shapes_dataset
    out = tmp_path_factory.mktemp('shapes64')
    make_shapes_dataset(str(out), num_images=16, size=64, seed=0)
    return str(out)


@pytest.fixture(scope='module')
def trained_checkpoint(trained_demo_model, tmp_path_factory):
    """The briefly trained demo MAE saved as mmengine saves it."""
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, iter=50),
                    state_dict=trained_demo_model.state_dict()), path)
    return path


def test_visualize_masks_warns_when_attention_is_untrained(tmp_path,
                                                           shapes64):
    out = tmp_path / 'masks.png'
    res = run_tool('tools/analysis/visualize_masks.py', RANDOM_DEMO,
                   EHM_DEMO, '--images', shapes64, '--num', '2', '--out', out)
    warnings = [line for line in res.stderr.splitlines()
                if line.startswith('warning:')]
    assert len(warnings) == 1, res.stderr  # EHM, not the random row
    assert 'EvolvedHierarchicalMasker' in warnings[0]
    assert 'untrained' in warnings[0] and '--checkpoint' in warnings[0]
    assert res.stdout.strip() == f'saved {out}'  # quiet: nothing else
    assert np.asarray(Image.open(out)).shape[0] > 200


def test_pictures_are_the_same_on_every_run(shapes64):
    """The crops (numpy), the masks (torch) and the pictures repeat
    whatever the global random state was: a regenerated gallery only
    changes where the weights changed."""
    drawn = []
    for state in (1, 2):
        np.random.seed(state)
        torch.manual_seed(state)
        rows = config_rows(RANDOM_DEMO, 3, shapes64).rows
        drawn.append(np.stack(rows[0]))
    assert np.array_equal(*drawn)
    other = config_rows(RANDOM_DEMO, 3, shapes64, seed=1).rows
    assert not np.array_equal(np.stack(other[0]), drawn[0])


def test_config_rows_from_a_checkpoint(trained_checkpoint, shapes64,
                                       trained_demo_model):
    rows, titles, notes, legend = config_rows(
        EHM_DEMO, 2, shapes64, progress=[0.5], segments=True,
        checkpoint=trained_checkpoint)
    assert notes == [] and len(rows) == 2 and len(rows[0]) == 2
    assert titles[0].endswith('progress 0.5')
    assert 'outlines of its tree-cut nodes' in titles[1]
    assert rows[1][0].shape == (128, 128, 3)  # enlarged twice for the lines
    assert legend == {'visible', 'masked', 'outline'}  # nothing thrown
    # AMT: the saliency comes from the checkpoint, so AMT's own plan
    # (masked + thrown) is drawn, not its random warm-up (75 %, no throw);
    # with segments the image lit by that saliency comes first
    rows, titles, notes, legend = config_rows(
        AMT_DEMO, 2, shapes64, checkpoint=trained_checkpoint, segments=True,
        draws=2)
    assert notes == [] and len(rows) == 3
    assert titles[0].startswith('AMT saliency')
    assert 'saliency of this checkpoint' in titles[1]
    assert titles[1].endswith('draw 1') and titles[2].endswith('draw 2')
    assert legend == {'visible', 'masked', 'thrown'}
    thrown = np.array([90, 0, 0])
    assert any((np.abs(img.astype(int) - thrown).sum(-1) < 30).any()
               for img in rows[1])
    assert not all(np.array_equal(a, b) for a, b in zip(rows[1], rows[2]))
    rows, titles, notes, _ = config_rows(AMT_DEMO, 2, shapes64)
    assert 'untrained' in notes[0] and 'warm-up' in notes[0]


def test_load_encoder_weights_fits_or_names_what_does_not(
        trained_checkpoint, tmp_path):
    cfg = load_config(SIMMIM_AMT_DEMO)
    model = build_model(cfg)
    # an MAE checkpoint into SimMIM: the encoder loads, SimMIM's mask token
    # is kept as initialised
    line = load_encoder_weights(model, trained_checkpoint)
    assert 'backbone.mask_token as initialised' in line
    state = torch.load(trained_checkpoint, weights_only=False)['state_dict']
    assert torch.equal(model.backbone.layers[0].attn.qkv.weight,
                       state['backbone.layers.0.attn.qkv.weight'])
    assert needs_weights_note(model, 'x', trained_checkpoint) is None
    assert 'AMTMasker' in needs_weights_note(model, 'x', None)
    other = load_config(osp.join(ROOT, 'configs', 'mae',
                                 'mae_vit-base-p16_ehm-mask_8xb512-amp-'
                                 'coslr-300e_in1k.py'))
    other.model.backbone.arch = 'deit-tiny'
    with pytest.raises(ValueError, match='does not fit the encoder'):
        load_encoder_weights(build_model(other), trained_checkpoint)


def test_legend_matches_the_overlay():
    visible, masked, thrown, outline = legend_handles(
        ['outline', 'thrown', 'masked', 'visible'])
    assert visible.get_facecolor()[3] == 0  # no colour: the image itself
    grey = np.full((2, 2, 3), 128, dtype=np.uint8)
    labels = np.array([[0, 1], [2, 0]])
    drawn = overlay_plan(grey, labels) / 255
    np.testing.assert_allclose(masked.get_facecolor()[:3], drawn[0, 1])
    np.testing.assert_allclose(thrown.get_facecolor()[:3], drawn[1, 0])
    np.testing.assert_allclose(drawn[0, 0], 128 / 255)  # visible unchanged
    # the outline swatch: a black line under a white one
    np.testing.assert_allclose(outline[0].get_color(), OUTLINE_DARK / 255)
    np.testing.assert_allclose(outline[1].get_color(), OUTLINE_LIGHT / 255)
    assert [h.get_label() for h in legend_handles({'masked'})] == \
        [masked.get_label()]
    with pytest.raises(ValueError, match='no legend entry'):
        legend_handles({'thrown away'})


def random_regions(rng, grid=(8, 8), parts=5):
    """Regions of a patch grid: each patch joins the nearest of a few
    random seeds (connected blobs, like parts and cut nodes)."""
    seeds = rng.integers(0, grid[0], size=(parts, 2))
    yy, xx = np.mgrid[0:grid[0], 0:grid[1]]
    dist = (yy[..., None] - seeds[:, 0])**2 + (xx[..., None] - seeds[:, 1])**2
    return dist.argmin(-1)


@pytest.mark.parametrize('scale', [1, 2, 3])
def test_outline_pixels_lie_exactly_on_region_boundaries(scale):
    rng = np.random.default_rng(scale)
    # no pure black or white in the image: every outline pixel is seen
    img = rng.integers(20, 236, size=(64, 64, 3)).astype(np.uint8)
    segments = random_regions(rng)
    out = outline_segments(img, segments, scale=scale)
    size = 64 * scale
    assert out.shape == (size, size, 3)
    base = img.repeat(scale, 0).repeat(scale, 1)
    regions = to_pixels(segments, (size, size))
    changed = (out != base).any(-1)
    dark = (out == OUTLINE_DARK).all(-1)
    light = (out == OUTLINE_LIGHT).all(-1)
    assert np.array_equal(changed, dark | light)  # only the two colours
    for y in range(size):
        for x in range(size):
            nbrs = {(y + dy, x + dx): (dy, dx)
                    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0))
                    if 0 <= y + dy < size and 0 <= x + dx < size}
            other = {p: d for p, d in nbrs.items()
                     if regions[p] != regions[y, x]}
            # outlined iff next to another region (on a boundary) ...
            assert changed[y, x] == bool(other), (y, x)
            # ... black on the left / upper side of it, white on the other
            if other:
                forward = any(d in ((0, 1), (1, 0)) for d in other.values())
                assert dark[y, x] == forward, (y, x)
    # one region: nothing to outline
    assert np.array_equal(outline_segments(img, np.zeros((8, 8), int)),
                          img.repeat(2, 0).repeat(2, 1))
    with pytest.raises(ValueError, match='scale'):
        outline_segments(img, segments, scale=0)


def picture_pixels(path):
    return np.asarray(Image.open(path).convert('RGB')).reshape(-1, 3)


def has_colour(pixels, colour):
    return bool((np.abs(pixels.astype(int) - colour).max(-1) <= 1).any())


def test_a_legend_lists_the_colours_the_picture_shows(tmp_path):
    """Grey images under a plan: the thrown swatch colour is in the
    picture exactly when some patch is thrown (then twice: patch and
    legend); no legend entry for what no row draws."""
    grey = np.full((64, 64, 3), 128, dtype=np.uint8)
    thrown_rgb = overlay_plan(grey[:1, :1], np.array([[2]]))[0, 0]
    masked_rgb = overlay_plan(grey[:1, :1], np.array([[1]]))[0, 0]
    mae = np.zeros((8, 8), int)
    mae[:, :6] = 1  # masked and visible only (MAE)
    amt = mae.copy()
    amt[:, 3:6] = 2  # AMT throws some
    for labels, entries in ((mae, {'visible', 'masked'}),
                            (amt, {'visible', 'masked', 'thrown'})):
        rows = [[overlay_plan(grey, labels)] * 2]
        assert plan_legend([labels]) == entries
        path = str(tmp_path / f'{len(entries)}.png')
        save_image_grid(rows, path, row_titles=['x'],
                        legend=plan_legend([labels]))
        pixels = picture_pixels(path)
        assert has_colour(pixels, masked_rgb)
        assert has_colour(pixels, thrown_rgb) == ('thrown' in entries)
        # without a legend no swatch: only the cells show the colour
        bare = str(tmp_path / 'bare.png')
        save_image_grid(rows, bare)
        if 'thrown' not in entries:
            assert not has_colour(picture_pixels(bare), thrown_rgb)


def test_cells_have_the_same_size_whatever_the_rows(tmp_path):
    """A one-row picture has the cells of a four-row one (the AMT and
    IDM galleries were 55-px thumbnails in empty space)."""
    green = np.zeros((64, 64, 3), dtype=np.uint8)
    green[..., 1] = 255
    sizes = {}
    for n in (1, 4):
        path = str(tmp_path / f'{n}.png')
        save_image_grid([[green] * 3] * n, path,
                        row_titles=['title'] * n, legend={'visible'})
        pixels = picture_pixels(path)
        cells = (pixels == [0, 255, 0]).all(-1).sum()
        assert cells == n * 3 * 128 * 128  # 128-px cells, all shown
        sizes[n] = Image.open(path).size
    assert sizes[1][0] == sizes[4][0]
    assert sizes[4][1] - sizes[1][1] == 3 * (128 + 20 + 6)  # row+title+gap


def test_saliency_light_is_brightest_where_amt_masks_first():
    from mmmask.apis.mask_drawing import saliency_light
    img = np.full((64, 64, 3), 200, dtype=np.uint8)
    saliency = np.zeros((8, 8))
    saliency[0, 0], saliency[7, 7] = 1.0, 0.5
    lit = saliency_light(img, saliency)
    assert (lit[:8, :8] == 200).all()  # the most salient cell: as is
    assert (lit[-8:, -8:] == 115).all()  # 200 * (0.15 + 0.85 * 0.5)
    assert (lit[8:16, :8] == 30).all()  # the least: 15 % of the image


def test_fitting_num_bins():
    assert fitting_num_bins(14, 14) == 3 and fitting_num_bins(8, 8) == 3
    assert fitting_num_bins(6, 6) == 2 and fitting_num_bins(4, 4) == 1
    assert fitting_num_bins(14, 14, preferred=8) < 8
    with pytest.raises(ValueError):
        fitting_num_bins(8, 8, preferred=0)


PIPELINE_CONFIGS = sorted(
    p for sub in ('mae', 'simmim', 'colormae', 'camae')
    for p in glob.glob(osp.join(ROOT, 'configs', sub, '*.py')))


def test_mask_statistics_draws_every_pipeline_config():
    """Configs whose masks come from the pipeline are drawn without a
    model; every one fits some number of bands."""
    stats = tool_module('tools/analysis/mask_statistics.py')
    drawn = 0
    for config in PIPELINE_CONFIGS:
        if load_config(config).model.get('masker') is not None:
            continue
        masks, notes = stats.draw_masks(config, 4)
        assert masks.dim() == 3 and masks.shape[0] == 4 and notes == []
        assert fitting_num_bins(*masks.shape[1:]) >= 1
        drawn += 1
    assert drawn >= 10


def test_mask_statistics_notes_and_checkpoint(trained_checkpoint, shapes64):
    stats = tool_module('tools/analysis/mask_statistics.py')
    masks, notes = stats.draw_masks(EHM_DEMO, 4)
    assert masks.shape == (4, 8, 8)
    assert any('untrained' in n for n in notes)
    assert any('progress 0.5' in n for n in notes)
    masks, notes = stats.draw_masks(EHM_DEMO, 4, checkpoint=trained_checkpoint,
                                    images=shapes64, progress=1.0)
    assert masks.shape == (4, 8, 8)
    assert not any('untrained' in n for n in notes)
    assert any(trained_checkpoint in n for n in notes)
    assert (masks.flatten(1).sum(1) == 48).all()  # 75 % of 64


def test_mask_statistics_tool_on_demo_configs(capsys):
    tool_module('tools/analysis/mask_statistics.py').main([
        RANDOM_DEMO, AMT_DEMO, '--num', '8', '--cfg-options',
        'train_dataloader.dataset.pipeline.3.input_size=32'])
    out = capsys.readouterr()
    for text in INIT_LOG:
        assert text not in out.out + out.err
    lines = out.out.splitlines()
    assert lines[0].startswith('config') and 'spectrum' in lines[0]
    random_row = next(r for r in lines if r.startswith('mae_vit-tiny-p8_rand'))
    # 32 px / patch 8: a 4x4 mask grid holds one band, said in a note
    assert ' 4x4 ' in random_row and '[1]' in random_row
    assert any(r.startswith('[1] 1 spectrum band(s): a 4x4 mask grid')
               for r in lines)
    amt_row = next(r for r in lines if r.startswith('mae_vit-tiny-p8_amt'))
    assert ' 8x8 ' in amt_row
    assert any('AMTMasker' in r and 'untrained' in r for r in lines)


def test_make_gallery_draws_every_strategy(tmp_path, trained_checkpoint,
                                           shapes64, capsys):
    out = tmp_path / 'gallery'
    gallery_tool = tool_module('tools/analysis/make_gallery.py')
    gallery_tool.main(['--checkpoint', trained_checkpoint, '--images',
                       shapes64, '--out', str(out), '--num', '1'])
    res = capsys.readouterr()
    assert 'warning' not in res.err  # every masker had the checkpoint
    for text in INIT_LOG:
        assert text not in res.out + res.err
    gallery = gallery_tool.GALLERY
    sizes = {}
    for name, rows in gallery.items():
        assert f'saved {out / name}' in res.out
        sizes[name] = Image.open(out / name).size
    # the same cells in every picture: 7 data-independent rows, EHM 3
    # progress values x (masks + outlines), AMT saliency + 3 draws, IDM 3
    # heads + the drawn one; legends of as many entries (one column here)
    # take the same height
    assert len({width for width, _ in sizes.values()}) == 1
    height = {name: size[1] for name, size in sizes.items()}
    row = 128 + 20 + 6  # cell, title, gap
    assert height['gallery_data_independent.png'] - \
        height['gallery_idm.png'] == 3 * row  # visible, masked
    assert height['gallery_ehm.png'] - height['gallery_amt.png'] == 2 * row
    assert height['gallery_epm.png'] == height['gallery_ehm.png']
    assert res.out.count('loaded') == 4  # AMT, EHM, EPM, IDM
