"""Tiny generated data sets in the downstream formats, and a tiny
pre-training checkpoint, for the transfer smoke tests."""
import os
import os.path as osp

import numpy as np
import torch
from PIL import Image

from mmpretrain.registry import MODELS

# the ADE20K / COCO generators live in the package (the CPU demo
# downstream configs use them too); imported here for the tests
from mmmask.datasets.downstream_synthetic import (  # noqa: F401
    make_ade20k, make_coco, random_boxes, rect_image)
from tests.helpers import tiny_camae_cfg, tiny_mae_cfg

#: the tiny encoder every transfer test starts from (4 blocks: UperNet
#: takes 4 feature maps)
PRETRAIN_SIZE, PRETRAIN_PATCH, PRETRAIN_LAYERS = 64, 16, 4


def _train_briefly(model, loss_fn, steps: int, seed: int) -> dict:
    """A few AdamW steps (lr 1e-2), so that every tensor a transfer must
    carry (norms, biases, class token, position embedding) has left its
    initial value; returns the state dict."""
    gen = torch.Generator().manual_seed(seed)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        losses = loss_fn(model, gen)
        optim.zero_grad()
        sum(losses.values()).backward()
        optim.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _save(path: str, state: dict, steps: int) -> None:
    """As mmengine saves a checkpoint (meta + state dict)."""
    torch.save(dict(meta=dict(epoch=1, iter=steps), state_dict=state), path)


def _images(gen: torch.Generator, batch: int = 4) -> torch.Tensor:
    return torch.randn(batch, 3, PRETRAIN_SIZE, PRETRAIN_SIZE, generator=gen)


def save_tiny_pretrain_checkpoint(path: str, seed: int = 0,
                                  simmim: bool = False,
                                  steps: int = 3) -> dict:
    """Briefly train a tiny MAEWithMasker (``steps`` AdamW steps on random
    images), save it as mmengine does; return its state dict."""
    torch.manual_seed(seed)
    cfg = tiny_mae_cfg(img_size=PRETRAIN_SIZE, patch_size=PRETRAIN_PATCH)
    cfg['backbone']['arch']['num_layers'] = PRETRAIN_LAYERS
    model = MODELS.build(cfg)
    model.init_weights()
    state = _train_briefly(
        model, lambda m, gen: m.loss(_images(gen), None), steps, seed)
    if simmim:  # SimMIMViT's extra key
        state['backbone.mask_token'] = torch.zeros(1, 1, 32)
    _save(path, state, steps)
    return state


def save_tiny_camae_checkpoint(path: str, seed: int = 0,
                               steps: int = 3) -> dict:
    """Briefly train a tiny CAMAE (IDM masks, two random views per image),
    save it as mmengine does; return its state dict."""
    from mmengine.logging import MessageHub
    MessageHub.get_current_instance().update_info('max_iters', steps)
    torch.manual_seed(seed)
    cfg = tiny_camae_cfg(img_size=PRETRAIN_SIZE, patch_size=PRETRAIN_PATCH)
    cfg['backbone']['arch']['num_layers'] = PRETRAIN_LAYERS
    model = MODELS.build(cfg)
    model.init_weights()
    state = _train_briefly(
        model, lambda m, gen: m.loss([_images(gen), _images(gen)], None),
        steps, seed)
    _save(path, state, steps)
    return state


def make_classification_folder(root: str, num: int = 8, size: int = 64,
                               seed: int = 0) -> str:
    """``root/{a,b}/*.png`` (mmpretrain ``CustomDataset`` with labels)."""
    rng = np.random.default_rng(seed)
    for i in range(num):
        cls = 'ab'[i % 2]
        os.makedirs(osp.join(root, cls), exist_ok=True)
        img = rect_image(rng, size, random_boxes(rng, size, 1 + i % 2))
        Image.fromarray(img).save(osp.join(root, cls, f'{i}.png'))
    return root
