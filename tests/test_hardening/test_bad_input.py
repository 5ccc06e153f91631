"""Bad input: each kind raises a clear error that says what to change, and
nothing already written (checkpoints, caches) is lost or truncated."""
import argparse
import hashlib
import os
import os.path as osp
import re
import shutil
import struct
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.registry import HOOKS, MODELS, TRANSFORMS

from mmmask.apis.checkpoint import check_checkpoint_file
from mmmask.apis.train_inputs import check_data_roots
from mmmask.datasets.synthetic import make_shapes_dataset
from mmmask.downstream.cli import main as convert_main
from mmmask.engine import CheckedRunner, hint_typos
from mmmask.errors import InvalidInputError
from mmmask.masks import (KIND_PARTS, KIND_TREE, CacheError, CacheSizeError,
                          check_cache_size, read_header, write_image_cache)
from tests.helpers import tiny_mae_cfg, tiny_runner_cfg, train_tool
from tests.test_engine.test_amt_refresh import amt_hook, amt_runner_cfg
from tests.test_models.test_simmim import SWIN_CFG


def digest(path: str) -> str:
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def truncate(path: str, keep: int) -> None:
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:keep])


@pytest.fixture(scope='module')
def pretrain_ckpt(tmp_path_factory):
    """A pre-training checkpoint of a tiny MAE, as mmengine saves it."""
    torch.manual_seed(0)
    model = MODELS.build(tiny_mae_cfg())
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=1)), path)
    return path


def train_args(**kw) -> argparse.Namespace:
    """``tools/train.py``'s defaults for config ``x.py``, updated by kw."""
    with mock.patch.dict(os.environ):  # parse_args may set LOCAL_RANK
        args = train_tool().parse_args(['x.py'])
    vars(args).update(kw)
    return args


# 1. wrong ratios ----------------------------------------------------------
@pytest.mark.parametrize('kw,match', [
    (dict(mask_ratio=1.2), r'mask_ratio=1.2 is outside \(0, 1\): set'),
    (dict(mask_ratio=0.0), r'mask_ratio=0.0 is outside'),
    (dict(mask_ratio=0.5, throw_ratio=-0.1), 'throw_ratio=-0.1 is outside'),
    (dict(mask_ratio=0.6, throw_ratio=0.4), r'mask_ratio \+ throw_ratio'),
])
def test_wrong_ratios(kw, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='RandomMasker', **kw))
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='AMTMasker', **kw))


# 2. unsupported backbone for attention probing or throwing ---------------
@pytest.mark.parametrize('masker', [
    dict(type='AMTMasker', mask_ratio=0.6, throw_ratio=0.0),
    dict(type='EvolvedHierarchicalMasker'),
    dict(type='EvolvedPartMasker', parts_range=(12, 4)),
    dict(type='IDMMasker', num_heads=2),
], ids=lambda m: m['type'])
def test_swin_refused_at_build_for_attention_maskers(masker):
    with pytest.raises(TypeError) as err:
        MODELS.build(dict(SWIN_CFG, masker=masker))
    msg = str(err.value)
    assert masker['type'] in msg and 'SimMIMSwinTransformer' in msg
    assert 'use MaskableMAEViT or SimMIMViT' in msg


def test_swin_refuses_throwing():
    masker = dict(type='RandomMasker', mask_ratio=0.5, throw_ratio=0.25)
    with pytest.raises(ValueError, match='cannot drop tokens.*throw_ratio=0'):
        MODELS.build(dict(SWIN_CFG, masker=masker))
    # masking without attention and without throwing stays allowed on Swin
    MODELS.build(dict(SWIN_CFG, masker=dict(type='RandomMasker')))


# 3. image size not divisible by the patch size --------------------------
def test_image_size_not_divisible_by_patch():
    with pytest.raises(ValueError,
                       match=r'img_size=\(30, 30\) is not divisible by the '
                       r'patch size \(8, 8\).*multiple of the patch size'):
        MODELS.build(tiny_mae_cfg(img_size=30))
    with pytest.raises(ValueError, match='not divisible'):
        TRANSFORMS.build(dict(type='RandomMaskGenerator', input_size=30,
                              mask_patch_size=8, model_patch_size=8))


# 4. missing or corrupt checkpoint ----------------------------------------
def test_missing_checkpoint_for_resume(tmp_path):
    cfg = Config(tiny_runner_cfg(str(tmp_path), str(tmp_path)))
    missing = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match='--resume .*nope.pth.*give'):
        train_tool().merge_args(cfg, train_args(resume=missing))


@pytest.mark.parametrize('what', ['resume', 'load_from'])
def test_truncated_checkpoint_named_for_train(tmp_path, pretrain_ckpt, what):
    bad = str(tmp_path / 'epoch_3.pth')
    shutil.copy(pretrain_ckpt, bad)
    truncate(bad, 1000)
    before = digest(bad)
    cfg = Config(tiny_runner_cfg(str(tmp_path), str(tmp_path)))
    if what == 'resume':
        args = train_args(resume=bad)
    else:
        args = train_args(cfg_options={'load_from': bad})
    with pytest.raises(ValueError, match=r'epoch_3.pth is not a readable '
                       'checkpoint.*use another checkpoint'):
        train_tool().merge_args(cfg, args)
    assert digest(bad) == before  # the evidence is kept as it was


def test_check_checkpoint_file_kinds(tmp_path, pretrain_ckpt):
    check_checkpoint_file(pretrain_ckpt)  # a good one passes
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(ValueError, match='empty.pth.*empty file'):
        check_checkpoint_file(str(empty))
    text = tmp_path / 'notes.pth'
    text.write_text('hello')
    with pytest.raises(ValueError, match='notes.pth.*not a torch checkpoint'):
        check_checkpoint_file(str(text))


def test_converter_names_truncated_input_and_keeps_output(
        tmp_path, pretrain_ckpt, capsys):
    bad = str(tmp_path / 'cut.pth')
    shutil.copy(pretrain_ckpt, bad)
    truncate(bad, 500)
    dst = tmp_path / 'out.pth'
    dst.write_bytes(b'an earlier conversion')
    before = digest(str(dst))
    assert convert_main('mmpretrain', [bad, str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'cut.pth is not a readable checkpoint' in err
    assert digest(str(dst)) == before


# 5. converter given the wrong checkpoint ---------------------------------
def test_converter_refuses_converted_and_finetuned(tmp_path, pretrain_ckpt,
                                                   capsys):
    converted = str(tmp_path / 'backbone.pth')
    assert convert_main('mmpretrain', [pretrain_ckpt, converted]) == 0
    capsys.readouterr()
    again = str(tmp_path / 'again.pth')
    assert convert_main('mmpretrain', [converted, again]) == 2
    assert 'already converted backbone' in capsys.readouterr().err
    assert not osp.exists(again)
    finetuned = str(tmp_path / 'finetuned.pth')
    state = torch.load(pretrain_ckpt, weights_only=True)['state_dict']
    state['head.fc.weight'] = torch.zeros(10, 32)
    torch.save(dict(state_dict=state), finetuned)
    assert convert_main('mmseg', [finetuned, again]) == 2
    assert 'not a pre-training checkpoint' in capsys.readouterr().err


def test_converter_never_overwrites_its_input(pretrain_ckpt, capsys):
    before = digest(pretrain_ckpt)
    assert convert_main('mmdet', [pretrain_ckpt, pretrain_ckpt]) == 2
    assert 'never overwrites its input' in capsys.readouterr().err
    assert digest(pretrain_ckpt) == before


# 6. AMT cache from a dataset of another size -----------------------------
@pytest.fixture
def eight_images(tmp_path):
    root = str(tmp_path / 'data')
    make_shapes_dataset(root, num_images=8, size=32, seed=2)
    return root


def runner_with_cache(tmp_path, data_root, cache_rows):
    """An AMT runner whose work dir holds a version-1 cache of
    ``cache_rows`` images; returns ``(runner, cache path, its digest)``."""
    work = str(tmp_path / 'work')
    os.makedirs(work)
    cache = osp.join(work, 'amt_saliency.bin')
    write_image_cache(cache, np.random.rand(cache_rows, 4, 4), 1,
                      'float32')
    runner = CheckedRunner.from_cfg(Config(amt_runner_cfg(work, data_root, 2)))
    return runner, cache, digest(cache)


def test_amt_cache_of_another_dataset_size(tmp_path, eight_images):
    runner, cache, before = runner_with_cache(tmp_path, eight_images, 12)
    with pytest.raises(ValueError,
                       match=r'amt_saliency.bin holds 12 images but the '
                       'training dataset has 8.*Point cache_file'):
        check_cache_size(cache, 8)
    for version in (0, 1):  # a fresh run and a resumed one
        amt_hook(runner).version = version
        with pytest.raises(ValueError, match='holds 12 images but the '
                           'training dataset has 8'):
            amt_hook(runner).before_train(runner)
        assert digest(cache) == before


def test_failed_refresh_keeps_the_cache(tmp_path, eight_images):
    runner, cache, before = runner_with_cache(tmp_path, eight_images, 8)
    hook = amt_hook(runner)
    hook.version = 1
    hook.before_train(runner)  # a matching cache is accepted
    victim = sorted(os.listdir(eight_images))[3]
    truncate(osp.join(eight_images, victim), 60)
    with pytest.raises(ValueError, match=f'{victim}.*replace it with a good '
                       'copy or remove it'):
        hook.refresh(runner)
    assert digest(cache) == before and hook.version == 1


# 7. unknown colour -------------------------------------------------------
def test_simmim_pipeline_mask_refused_only_when_wrong():
    """SimMIM takes a pipeline mask as upstream does; what is refused is
    what would be wrong there too."""
    from mmpretrain.structures import DataSample

    from tests.helpers import tiny_simmim_cfg
    model = MODELS.build(tiny_simmim_cfg())
    x = torch.randn(2, 3, 32, 32)

    def loss(mask):
        return model.loss(x, [DataSample().set_mask(m) for m in mask])

    with pytest.raises(ValueError, match=r'0 / 0 = NaN'):
        loss(torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match=r'\[0, 1\].*negative loss'):
        loss(torch.full((2, 4, 4), 2.0))
    with pytest.raises(ValueError, match='4, 4\\) patch grid'):
        loss(torch.ones(2, 8, 8))


def test_unknown_colour():
    match = "unknown noise colour 'pink': use one of red, blue, green"
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='ColorNoiseMasker', color='pink'))
    with pytest.raises(ValueError, match=match):
        TRANSFORMS.build(dict(type='ColorNoiseMaskGenerator', color='pink',
                              input_size=32, mask_patch_size=8,
                              model_patch_size=8, bank_num=1, bank_size=8))


# 8. K larger than the number of patches -----------------------------------
def test_epm_parts_more_than_patches_refused_at_build():
    with pytest.raises(InvalidInputError,
                       match=r'parts_range=\(40, 10\) asks for more parts K '
                       'than the 16 patches of the 4x4 grid: set '
                       r'parts_range to at most \(16'):
        MODELS.build(tiny_mae_cfg(masker=dict(type='EvolvedPartMasker')))
    MODELS.build(tiny_mae_cfg(masker=dict(type='EvolvedPartMasker',
                                          parts_range=(16, 4))))


# 9. corrupt image file ---------------------------------------------------
@pytest.mark.parametrize('keep', [0, 60])
def test_corrupt_image_names_the_file(tmp_path, keep):
    root = str(tmp_path / 'imgs')
    make_shapes_dataset(root, num_images=1, size=32, seed=3)
    path = osp.join(root, os.listdir(root)[0])
    truncate(path, keep)
    load = TRANSFORMS.build(dict(type='LoadImageFromFileNamingErrors'))
    advice = (r'replace it with a good copy or remove it from the dataset '
              r'\(ignore_empty=True .* does not skip such files' if keep else
              'the file is empty; .* set ignore_empty=True')
    with pytest.raises(ValueError, match=f'cannot decode the image file '
                       f'{path}.*{advice}'):
        load(dict(img_path=path))
    # the advice holds: ignore_empty=True skips an empty file, not a
    # truncated one
    skip = TRANSFORMS.build(dict(type='LoadImageFromFileNamingErrors',
                                 ignore_empty=True))
    if keep:
        with pytest.raises(ValueError, match='cannot decode'):
            skip(dict(img_path=path))
    else:
        assert skip(dict(img_path=path)) is None
    with pytest.raises(FileNotFoundError):
        load(dict(img_path=path + '.missing'))


# 10. config typos in type names ------------------------------------------
def test_masker_type_typo_lists_registered():
    with pytest.raises(KeyError) as err:
        MODELS.build(tiny_mae_cfg(masker=dict(type='RandomMaskr')))
    msg = str(err.value)
    assert "'RandomMaskr' is not registered" in msg
    for name in ('RandomMasker', 'AMTMasker', 'EvolvedPartMasker',
                 'IDMMasker', 'ColorNoiseMasker'):
        assert name in msg


@pytest.mark.parametrize('registry,typo,right', [
    (HOOKS, 'AMTSaliencyRefreshHok', 'AMTSaliencyRefreshHook'),
    (HOOKS, 'MaskSchedulerHook', 'MaskScheduleHook'),
    (TRANSFORMS, 'ColorNoiseMaskGenerater', 'ColorNoiseMaskGenerator'),
])
def test_hook_and_transform_typos_get_hints(registry, typo, right):
    with pytest.raises(KeyError) as err, hint_typos():
        registry.build(dict(type=typo))
    msg = str(err.value)
    assert f'Did you mean {right}' in msg
    assert 'Registered by mmmask in this registry' in msg


def test_typo_in_a_runner_config_hook(tmp_path, shapes_dir):
    cfg = tiny_runner_cfg(str(tmp_path), shapes_dir, max_epochs=1,
                          custom_hooks=[dict(type='PLBHok')])
    with pytest.raises(KeyError, match='Did you mean PLBHook'):
        CheckedRunner.from_cfg(Config(cfg))


# 11. a ratio given as a string -------------------------------------------
@pytest.mark.parametrize('build', [
    lambda r: MODELS.build(dict(type='RandomMasker', mask_ratio=r)),
    lambda r: MODELS.build(dict(type='AMTMasker', mask_ratio=r,
                                throw_ratio=0.4)),
    lambda r: TRANSFORMS.build(dict(type='RandomMaskGenerator',
                                    input_size=32, mask_patch_size=8,
                                    model_patch_size=8, mask_ratio=r)),
    lambda r: MODELS.build(tiny_mae_cfg(backbone=dict(
        type='MaskableMAEViT', arch=dict(embed_dims=32, num_layers=2,
                                         num_heads=2,
                                         feedforward_channels=64),
        img_size=32, patch_size=8, mask_ratio=r))),
], ids=['masker', 'amt', 'generator', 'backbone'])
def test_ratio_given_as_a_string(build):
    with pytest.raises(TypeError,
                       match=r"mask_ratio='0.45' is a str, not a number: "
                       'write mask_ratio=0.45 without quotes'):
        build('0.45')


def test_throw_ratio_given_as_a_string():
    with pytest.raises(TypeError, match=r"throw_ratio='a lot' is a str, not "
                       'a number: write throw_ratio=0.0 without quotes'):
        MODELS.build(dict(type='RandomMasker', mask_ratio=0.5,
                          throw_ratio='a lot'))


# 12. a config without env_cfg (CPU adaptation) -----------------------------
def test_config_without_env_cfg_runs_on_cpu(tmp_path, shapes_dir):
    cfg = tiny_runner_cfg(str(tmp_path), shapes_dir)
    del cfg['env_cfg']
    with mock.patch('torch.cuda.is_available', return_value=False):
        cfg = train_tool().merge_args(Config(cfg), train_args())
    assert cfg.env_cfg.dist_cfg.backend == 'gloo'


# 13. truncated checkpoint reached through auto-resume or a picture tool ---
def training_checkpoint(path: str, epoch: int) -> None:
    torch.save(dict(meta=dict(epoch=epoch, iter=2 * epoch),
                    state_dict=MODELS.build(tiny_mae_cfg()).state_dict(),
                    message_hub={}), path)


def test_truncated_checkpoint_through_auto_resume(tmp_path, shapes_dir):
    older, latest = (str(tmp_path / f'epoch_{i}.pth') for i in (1, 2))
    training_checkpoint(older, 1)
    training_checkpoint(latest, 2)
    truncate(latest, 2000)
    os.utime(older, (1, 1))  # clearly older
    (tmp_path / 'last_checkpoint').write_text(latest)
    cfg = Config(tiny_runner_cfg(str(tmp_path), shapes_dir))
    cfg = train_tool().merge_args(cfg, train_args(resume='auto'))
    runner = CheckedRunner.from_cfg(cfg)
    with pytest.raises(ValueError) as err:
        runner.load_or_resume()
    msg = str(err.value)
    assert f'{latest} is not a readable checkpoint' in msg
    assert f'the newest loadable checkpoint before it is {older}' in msg


def test_truncated_checkpoint_for_a_picture_tool(tmp_path, pretrain_ckpt):
    from mmmask.apis import build_model
    bad = str(tmp_path / 'epoch_9.pth')
    shutil.copy(pretrain_ckpt, bad)
    truncate(bad, 3000)
    with pytest.raises(ValueError,
                       match='epoch_9.pth is not a readable checkpoint'):
        build_model(Config(dict(model=tiny_mae_cfg())), bad)


# 14. converters: refused input or output, exit 2 without a traceback -----
def test_converter_folder_as_input_or_output(tmp_path, pretrain_ckpt,
                                             capsys):
    folder = tmp_path / 'out'
    folder.mkdir()
    assert convert_main('mmseg', [pretrain_ckpt, str(folder)]) == 2
    assert f'could not write the converted checkpoint {folder}: Is a ' \
        'directory' in capsys.readouterr().err
    assert convert_main('mmseg', [str(folder), str(tmp_path / 'x.pth')]) == 2
    assert 'is a folder, not a checkpoint file' in capsys.readouterr().err


# 15. dist_train.sh / dist_test.sh: arguments checked, spaces kept --------
ECHO_PYTHON = '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$ARGS_OUT"\n'


def dist_script(name: str, args, tmp_path, **env):
    import subprocess
    from tests.helpers import ROOT
    fake = tmp_path / 'fake python'
    fake.write_text(ECHO_PYTHON)
    fake.chmod(0o755)
    out = tmp_path / 'args.txt'
    env = dict(os.environ, PYTHON=str(fake), ARGS_OUT=str(out), **env)
    proc = subprocess.run(['bash', osp.join(ROOT, 'tools', name), *args],
                          env=env, capture_output=True, text=True)
    received = out.read_text().splitlines() if out.exists() else None
    return proc, received


@pytest.mark.parametrize('args,match', [
    ([], 'expected CONFIG and GPUS, got 0'),
    (['{cfg}'], 'expected CONFIG and GPUS, got 1'),
    (['{cfg}', 'two'], r"GPUS must be .* \(a positive integer\), got 'two'"),
    (['{cfg}', '0'], "got '0'"),
    (['no such.py', '2'], "config file 'no such.py' does not exist"),
])
def test_dist_train_checks_its_arguments(tmp_path, args, match):
    cfg = tmp_path / 'my config.py'
    cfg.write_text('x = 1')
    proc, received = dist_script(
        'dist_train.sh', [a.format(cfg=cfg) for a in args], tmp_path)
    assert proc.returncode == 2 and received is None
    assert re.search(match, proc.stderr) and 'usage:' in proc.stderr


def test_dist_scripts_keep_paths_with_spaces(tmp_path):
    cfg = tmp_path / 'my config.py'
    cfg.write_text('x = 1')
    ckpt = tmp_path / 'epoch 1.pth'
    ckpt.write_bytes(b'x')
    proc, received = dist_script(
        'dist_train.sh', [str(cfg), '2', '--work-dir', str(tmp_path / 'w d'),
                          '--cfg-options', 'a=1'], tmp_path, PORT='29123')
    assert proc.returncode == 0, proc.stderr
    assert received[-7:] == [str(cfg), '--launcher', 'pytorch',
                             '--work-dir', str(tmp_path / 'w d'),
                             '--cfg-options', 'a=1']
    assert '--nproc_per_node=2' in received
    assert '--master_port=29123' in received
    proc, received = dist_script(
        'dist_test.sh', [str(cfg), str(ckpt), '1'], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert received[-4:] == [str(cfg), str(ckpt), '--launcher', 'pytorch']
    proc, _ = dist_script('dist_test.sh', [str(cfg), 'none.pth', '1'],
                          tmp_path)
    assert proc.returncode == 2
    assert "checkpoint 'none.pth' does not exist" in proc.stderr


# 15. issue 19: named messages for the smaller gaps ------------------------
def run_train_main(argv):
    """``tools/train.py`` ``main()`` with ``argv``; the runner is never
    built (the checks come first)."""
    tool = train_tool()
    with mock.patch.dict(os.environ), \
            mock.patch.object(sys, 'argv', ['tools/train.py', *argv]), \
            mock.patch.object(tool, 'build_runner') as build:
        try:
            tool.main()
        finally:
            assert not build.called


def test_config_path_that_is_a_folder(tmp_path):
    (tmp_path / 'mae_demo.py').write_text('model = None\n')
    with pytest.raises(IsADirectoryError) as err:
        run_train_main([str(tmp_path)])
    assert str(err.value) == (
        f'config {tmp_path} is a folder, not a config file (it holds '
        'mae_demo.py): give the path of one config .py file, e.g. '
        f'{tmp_path / "mae_demo.py"}')
    with pytest.raises(FileNotFoundError, match='no_such.py does not exist'):
        run_train_main([str(tmp_path / 'no_such.py')])


def test_missing_data_root_names_the_key(tmp_path, shapes_dir):
    missing = str(tmp_path / 'data' / 'shapes-64px')
    config = str(tmp_path / 'run.py')
    Config(tiny_runner_cfg(str(tmp_path / 'work'), missing)).dump(config)
    with pytest.raises(FileNotFoundError) as err:
        run_train_main([config])
    msg = str(err.value)
    assert msg.startswith(
        f"train_dataloader.dataset.data_root = '{missing}': the data root "
        'does not exist (seen from ')
    # the demo data: the command that makes it; any data: the option
    assert (f'Make the demo data with python tools/misc/make_shapes_dataset'
            f'.py --out {missing} --num 512 --size 64') in msg
    assert msg.endswith('--cfg-options train_dataloader.dataset.data_root='
                        '/path/to/data')
    # a wrapped dataset and a missing prefix folder are named by their keys
    cfg = Config(tiny_runner_cfg(str(tmp_path / 'work'), shapes_dir))
    inner = cfg.train_dataloader.dataset
    cfg.train_dataloader.dataset = dict(type='RepeatDataset', times=2,
                                        dataset=dict(inner,
                                                     data_prefix='train'))
    with pytest.raises(FileNotFoundError,
                       match=r"^train_dataloader\.dataset\.dataset\."
                       r"data_prefix = '.*/train': the data folder does not "
                       r'exist .*Put the data there, or point the config at '
                       r'your data: --cfg-options train_dataloader\.dataset'
                       r'\.dataset\.data_prefix=/path/to/data$'):
        check_data_roots(cfg)
    check_data_roots(Config(tiny_runner_cfg(str(tmp_path), shapes_dir)))


def test_changed_row_count_in_a_header_is_damage(tmp_path, eight_images):
    runner, cache, _ = runner_with_cache(tmp_path, eight_images, 8)
    with open(cache, 'r+b') as f:  # the header's num field: 8 -> 12
        f.seek(16)
        f.write(struct.pack('<q', 12))
    with pytest.raises(CacheError) as err:
        check_cache_size(cache, 8)
    assert not isinstance(err.value, CacheSizeError)
    assert str(err.value).startswith(
        f'the header of {cache} announces 12 rows but the file holds 576 '
        "bytes: 8 rows (the training dataset's size). The header is damaged")
    # a resumed run rebuilds it (instead of refusing "another dataset")
    hook = amt_hook(runner)
    hook.version = 1
    hook.before_train(runner)
    assert read_header(cache)['num'] == 8 and hook.version == 1


@pytest.mark.parametrize('kind,bad,match', [
    ('tree', 'node', r'tree nodes outside \[0, 30\)'),
    ('tree', 'order', 'tree merges of nodes made after them'),
    ('parts', 'label', r'part labels outside \[0, 16\)'),
    ('saliency', 'nan', 'NaN or inf values'),
])
def test_bad_cache_swapped_in_during_a_run_is_named(tmp_path, kind, bad,
                                                    match):
    """Was a raw IndexError in structure_crop.crop_tree (or silently
    wrong masks): now the transform names the file and what to do."""
    path = str(tmp_path / f'{kind}.bin')
    rng = np.random.default_rng(0)
    if kind == 'tree':
        from tests.test_masks.test_image_cache import tree_rows
        rows, args = tree_rows(), ('int16', KIND_TREE, (4, 4))
    elif kind == 'parts':
        rows, args = rng.integers(0, 16, (5, 4, 4)), ('int16', KIND_PARTS)
    else:
        rows, args = rng.random((5, 4, 4)), ('float32', )
    write_image_cache(path, rows, 1, *args)
    name = 'AMTSaliencyCrop' if kind == 'saliency' else \
        'EvolvedStructureCrop'
    transform = TRANSFORMS.build(dict(type=name, cell_size=8,
                                      cache_file=path))

    def sample():
        return dict(img=np.zeros((32, 32, 3), np.uint8), sample_idx=2,
                    ori_shape=(32, 32), geometry=[])

    transform(sample())  # the good cache is read
    rows = rows.copy()
    if bad == 'node':
        rows[2, 0, 0] = 40
    elif bad == 'order':
        rows[2, 0, 0] = 20  # merge 0 can only join leaves (nodes < 16)
    elif bad == 'label':
        rows[2, 1, 1] = 99
    else:
        rows[2, 0, 0] = np.nan
    write_image_cache(path, rows, 2, *args)  # replaced during the run
    with pytest.raises(CacheError, match=match) as err:
        transform(sample())
    msg = str(err.value)
    assert f'cache {path} holds' in msg and 'row of sample 2' in msg
    assert 'Stop the run and resume it (tools/train.py CONFIG --resume)' \
        in msg
