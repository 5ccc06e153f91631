"""The EHM/EPM probe in the training step's precision (bfloat16 on CPU).

Matrix products run in the autocast dtype; the softmax statistics, the
averaged attention, the tree and EM stay float32.
"""
import numpy as np
import torch
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import HOOKS, MODELS

from mmmask.engine.hooks.evolved_structure_hook import step_dtype
from mmmask.masks.stats import adjusted_rand_index


def quadrants(num: int = 8, seed: int = 0) -> torch.Tensor:
    """Normalised 64 px images of four flat, strongly different colours:
    inputs whose partition into 4 parts is well separated."""
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(num, 3, 64, 64)
    for b in range(num):
        colours = torch.rand(4, 3, generator=g) * 4 - 2
        for k, (i, j) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            x[b, :, 32 * i:32 * (i + 1), 32 * j:32 * (j + 1)] = \
                colours[k, :, None, None]
    return x


def clusters(children: np.ndarray, k: int) -> torch.Tensor:
    """Leaf labels after the first ``N - k`` merges of a tree."""
    n = len(children) + 1
    label = list(range(2 * n - 1))

    def find(i):
        while label[i] != i:
            i = label[i]
        return i

    for m, (a, b) in enumerate(children[:n - k]):
        label[find(int(a))] = label[find(int(b))] = n + m
    return torch.tensor([find(i) for i in range(n)])


def test_probe_runs_in_bf16_with_fp32_statistics(trained_demo_model):
    model = trained_demo_model
    x = quadrants()
    seen = []
    handle = model.backbone.layers[0].attn.qkv.register_forward_hook(
        lambda mod, args, out: seen.append(out.dtype))
    try:
        fp32 = model.masker.patch_attention(x, model.backbone)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            bf16 = model.masker.patch_attention(x, model.backbone)
    finally:
        handle.remove()
    assert seen == [torch.float32, torch.bfloat16]
    assert bf16.dtype == torch.float32 and torch.isfinite(bf16).all()
    rows = bf16.sum(-1)  # softmax rows without the CLS column
    assert (rows > 0).all() and (rows <= 1 + 1e-5).all()
    assert (bf16 - fp32).abs().max() < 5e-3


def test_partitions_agree_with_fp32_on_separated_inputs(trained_demo_model):
    """The refresh hook's rows in bfloat16 (amp='bfloat16') and float32:
    EHM's 4-cluster cut agrees exactly; EPM's 4 parts find the quadrants
    as well in both precisions."""
    model = trained_demo_model
    x = quadrants()
    hook = HOOKS.build(dict(type='EvolvedStructureRefreshHook'))
    ehm = model.masker
    # merge=0: exactly the 4 parts (a merge decision near its threshold
    # may flip with bfloat16's rounding)
    epm = MODELS.build(dict(type='EvolvedPartMasker', parts_range=(4, 4),
                            merge=0, cached=True))
    rows = {}
    for name, masker in (('ehm', ehm), ('epm', epm)):
        model.masker = masker
        masker.cached = True
        for dtype in (None, torch.bfloat16):
            hook.autocast_dtype = dtype
            torch.manual_seed(3)  # EM's initial means
            rows[name, dtype] = hook.compute_batch(model, x)
    model.masker, ehm.cached = ehm, False
    for dtype in (None, torch.bfloat16):
        assert rows['ehm', dtype].dtype == torch.int16
    cut = [torch.stack([clusters(r.numpy(), 4) for r in rows['ehm', d]])
           for d in (None, torch.bfloat16)]
    assert bool((adjusted_rand_index(*cut) == 1).all())
    # EPM: each precision's parts against the 4 quadrants (k-means++ seeds
    # depend on the features, so the two EM runs may start apart; what
    # must hold is that bfloat16 finds the structure as well as float32)
    truth = torch.arange(64).view(8, 8)
    truth = ((truth // 8 >= 4) * 2 + (truth % 8 >= 4)).flatten()
    truth = truth.expand(len(x), -1)
    to_truth = [
        float(adjusted_rand_index(rows['epm', d].flatten(1).long(),
                                  truth).mean())
        for d in (None, torch.bfloat16)
    ]
    assert to_truth[0] > 0.5 and to_truth[1] > 0.5, to_truth
    assert abs(to_truth[0] - to_truth[1]) < 0.1, to_truth


def test_refresh_precision_follows_the_optim_wrapper():
    amp = AmpOptimWrapper.__new__(AmpOptimWrapper)
    amp.cast_dtype = torch.bfloat16
    runner = type('R', (), {'optim_wrapper': amp})()
    assert step_dtype(runner) == torch.bfloat16
    amp.cast_dtype = None  # AmpOptimWrapper's default: float16
    assert step_dtype(runner) == torch.float16
    runner.optim_wrapper = OptimWrapper.__new__(OptimWrapper)
    assert step_dtype(runner) is None
