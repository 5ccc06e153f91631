"""Tiny generated data sets in the downstream formats, and a tiny
pre-training checkpoint, for the transfer smoke tests."""
import json
import os
import os.path as osp
from typing import List, Tuple

import numpy as np
import torch
from PIL import Image

from mmpretrain.registry import MODELS

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


def rect_image(rng: np.random.Generator, size: int,
               boxes: List[Tuple[int, int, int, int]]) -> np.ndarray:
    """A noisy background with filled rectangles ``(x0, y0, x1, y1)``."""
    img = rng.uniform(60, 120, (size, size, 3))
    for x0, y0, x1, y1 in boxes:
        img[y0:y1, x0:x1] = rng.uniform(150, 255, 3)
    return img.astype(np.uint8)


def random_boxes(rng: np.random.Generator, size: int,
                 n: int) -> List[Tuple[int, int, int, int]]:
    boxes = []
    for _ in range(n):
        w, h = rng.integers(size // 4, size // 2, 2)
        x0, y0 = rng.integers(0, size - w), rng.integers(0, size - h)
        boxes.append((int(x0), int(y0), int(x0 + w), int(y0 + h)))
    return boxes


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


def make_ade20k(root: str, num: int = 4, num_val: int = 2, size: int = 64,
                seed: int = 0) -> str:
    """ADE20K layout: ``images/{training,validation}/*.jpg`` and
    ``annotations/{training,validation}/*.png`` with labels 0..150 (0 =
    other, ignored through ``reduce_zero_label``)."""
    rng = np.random.default_rng(seed)
    for split, count in (('training', num), ('validation', num_val)):
        for sub in ('images', 'annotations'):
            os.makedirs(osp.join(root, sub, split), exist_ok=True)
        for i in range(count):
            boxes = random_boxes(rng, size, 2)
            img = rect_image(rng, size, boxes)
            label = np.full((size, size), 1, np.uint8)  # ADE 'wall'
            for j, (x0, y0, x1, y1) in enumerate(boxes):
                label[y0:y1, x0:x1] = 2 + j
            label[:2] = 0  # a strip of 'other'
            name = f'ADE_{split}_{i:08d}'
            Image.fromarray(img).save(
                osp.join(root, 'images', split, name + '.jpg'))
            Image.fromarray(label).save(
                osp.join(root, 'annotations', split, name + '.png'))
    return root


def make_coco(root: str, num: int = 4, num_val: int = 2, size: int = 64,
              seed: int = 0) -> str:
    """COCO layout: ``train2017/``, ``val2017/`` and
    ``annotations/instances_{train,val}2017.json`` with boxes and polygon
    masks of two categories (person, car)."""
    rng = np.random.default_rng(seed)
    os.makedirs(osp.join(root, 'annotations'), exist_ok=True)
    categories = [dict(id=1, name='person'), dict(id=3, name='car')]
    for split, count in (('train2017', num), ('val2017', num_val)):
        os.makedirs(osp.join(root, split), exist_ok=True)
        images, annotations = [], []
        for i in range(count):
            boxes = random_boxes(rng, size, 2)
            name = f'{i:012d}.jpg'
            Image.fromarray(rect_image(rng, size, boxes)).save(
                osp.join(root, split, name))
            images.append(dict(id=i + 1, file_name=name, width=size,
                               height=size))
            for j, (x0, y0, x1, y1) in enumerate(boxes):
                annotations.append(dict(
                    id=len(annotations) + 1, image_id=i + 1,
                    category_id=categories[j % 2]['id'],
                    bbox=[x0, y0, x1 - x0, y1 - y0],
                    area=float((x1 - x0) * (y1 - y0)),
                    segmentation=[[x0, y0, x1, y0, x1, y1, x0, y1]],
                    iscrowd=0))
        with open(osp.join(root, 'annotations',
                           f'instances_{split}.json'), 'w') as f:
            json.dump(dict(images=images, annotations=annotations,
                           categories=categories), f)
    return root
