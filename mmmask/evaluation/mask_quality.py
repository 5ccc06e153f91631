"""Where masks fall, measured against the objects (plain torch, no mm imports).

Every measure compares labellings of one image's patch grid:

- the *object map* on patches (:func:`patch_objects`): 0 = background,
  ``i`` = object ``i``; a patch belongs to the objects when most of its
  pixels do (more than half), and then to the object that covers most of
  them;
- the *mask* (1 = masked) and, for AMT, the *thrown* map;
- a *structure*: any labelling of the patches by a strategy (EHM's cut
  nodes at the masking level, EPM's parts, AMT's visible / masked / thrown).

Measures (docs/mask_quality.md):

- :func:`object_ratio`: share of the masked patches that lie on objects,
  divided by the share of object patches (1 = blind to objects, > 1 = masks
  objects more than background);
- :func:`completeness`: share of objects whose patches are masked all or
  none;
- :func:`adjusted_rand_index`: agreement of a structure with the object map
  (Hubert & Arabie 1985; 0 = what a random labelling with the same sizes
  gets on average, 1 = the same partition); :func:`chance_ari`: the ARI of
  the structure's labels shuffled over the patches, mean and spread;
- :func:`region_sizes`: mean size in patches of the connected regions of
  masked patches (4-neighbourhood).
"""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from mmmask.masks.stats import adjusted_rand_index as batch_ari


def patch_objects(objects: Tensor, patch: int) -> Tensor:
    """Object map on the patch grid.

    Args:
        objects (Tensor): ``(H, W)`` int pixel map, 0 = background,
            ``i > 0`` = object ``i``; ``H`` and ``W`` multiples of ``patch``.
        patch (int): Patch side in pixels.

    Returns:
        Tensor: ``(H / patch, W / patch)`` long: 0 where at most half of
        the patch's pixels are object pixels, else the object covering the
        most of them (the lowest id on a tie).
    """
    H, W = objects.shape
    if H % patch or W % patch:
        raise ValueError(f'a {H}x{W} map does not split into {patch}-px '
                         'patches')
    objects = objects.long()
    n = int(objects.max()) + 1
    onehot = F.one_hot(objects, n).permute(2, 0, 1).float()[None]
    counts = F.avg_pool2d(onehot, patch, stride=patch)[0]  # shares
    is_object = counts[0] < 0.5  # object pixels are more than half
    best = counts[1:].argmax(0) + 1 if n > 1 else torch.zeros_like(
        is_object, dtype=torch.long)
    return torch.where(is_object, best, torch.zeros_like(best))


def object_ratio(mask: Tensor, objects: Tensor) -> Optional[float]:
    """Share of masked patches on objects / share of object patches.

    Args:
        mask (Tensor): ``(L,)`` or ``(h, w)``, nonzero = masked (or
            thrown, for AMT's thrown share).
        objects (Tensor): Patch object map of the same shape.

    Returns:
        float | None: The ratio; None when nothing is masked or the image
        has no object patch or no background patch (then every mask has
        ratio 1 and the image tells nothing).
    """
    mask, obj = mask.reshape(-1) != 0, objects.reshape(-1) != 0
    n_mask, n_obj, n = int(mask.sum()), int(obj.sum()), obj.numel()
    if n_mask == 0 or n_obj in (0, n):
        return None
    return (int((mask & obj).sum()) / n_mask) / (n_obj / n)


def ratio_counts(mask: Tensor, objects: Tensor) -> Tuple[int, int, int, int]:
    """``(masked on objects, masked, object patches, patches)`` of an
    image with object and background patches, else zeros: summed over
    images they give the pooled :func:`object_ratio`."""
    mask, obj = mask.reshape(-1) != 0, objects.reshape(-1) != 0
    n_obj, n = int(obj.sum()), obj.numel()
    if n_obj in (0, n):
        return 0, 0, 0, 0
    return int((mask & obj).sum()), int(mask.sum()), n_obj, n


def complete_objects(mask: Tensor, objects: Tensor) -> Tuple[int, int]:
    """``(objects masked all or none, objects)`` of one image; an object
    counts when at least one patch is its."""
    mask, obj = mask.reshape(-1) != 0, objects.reshape(-1).long()
    complete = total = 0
    for i in obj.unique().tolist():
        if i == 0:
            continue
        share = mask[obj == i].float().mean()
        total += 1
        complete += int(bool(share == 0) or bool(share == 1))
    return complete, total


def completeness(mask: Tensor, objects: Tensor) -> Optional[float]:
    """Share of the image's objects masked all or none (None without
    objects)."""
    complete, total = complete_objects(mask, objects)
    return complete / total if total else None


def adjusted_rand_index(a: Tensor, b: Tensor) -> float:
    """Adjusted Rand index of two labellings of the same items (one
    labelling of :func:`mmmask.masks.stats.adjusted_rand_index`).

    ``(index - expected) / (max - expected)`` with ``index`` the pairs
    together in both, ``expected = pairs_a * pairs_b / pairs`` (its mean
    over labellings with the same sizes) and ``max = (pairs_a + pairs_b) /
    2`` (Hubert & Arabie 1985). 1.0 when both put every item together or
    both put every item apart (the same partition; the formula is 0 / 0).

    Args:
        a (Tensor): ``(L,)`` (or any shape) integer labels.
        b (Tensor): Labels of the same shape; label values are arbitrary.

    Returns:
        float: The index, at most 1; 0 on average for unrelated labellings.
    """
    a, b = a.reshape(-1), b.reshape(-1)
    if a.numel() != b.numel():
        raise ValueError(f'{a.numel()} and {b.numel()} items')
    return float(batch_ari(a[None], b[None])[0])


def chance_ari(objects: Tensor, structure: Tensor, num: int = 200,
               generator: Optional[torch.Generator] = None
               ) -> Tuple[float, float]:
    """The ARI a structure with the same label sizes gets by chance.

    The structure's labels are shuffled over the patches ``num`` times
    (a permutation test); by construction of the ARI the mean is 0 in
    expectation, and the spread says how far from 0 chance reaches at
    these sizes.

    Returns:
        tuple: ``(mean, standard deviation)`` of the shuffled ARIs.
    """
    flat = structure.reshape(-1)
    values = torch.tensor([
        adjusted_rand_index(
            objects, flat[torch.randperm(flat.numel(), generator=generator)])
        for _ in range(num)
    ], dtype=torch.float64)
    return float(values.mean()), float(values.std())


def masked_regions(mask: Tensor) -> Tensor:
    """Connected regions of masked patches (4-neighbourhood).

    Args:
        mask (Tensor): ``(h, w)`` map, nonzero = masked.

    Returns:
        Tensor: ``(h, w)`` long: 0 off the mask, ``1..n`` the regions.
    """
    on = mask != 0
    h, w = on.shape
    # every masked patch starts with its own id; ids spread to the
    # smallest of the 4-neighbourhood until nothing changes
    big = h * w + 1
    ids = torch.where(on, torch.arange(1, h * w + 1).view(h, w),
                      torch.full((h, w), big))
    while True:
        padded = F.pad(ids[None, None].float(), (1, 1, 1, 1),
                       value=float(big))[0, 0].long()
        neigh = torch.stack([padded[1:-1, 1:-1], padded[:-2, 1:-1],
                             padded[2:, 1:-1], padded[1:-1, :-2],
                             padded[1:-1, 2:]]).min(0).values
        new = torch.where(on, neigh, ids)
        if torch.equal(new, ids):
            break
        ids = new
    labels = torch.zeros(h, w, dtype=torch.long)
    if on.any():
        labels[on] = torch.unique(ids[on], return_inverse=True)[1] + 1
    return labels


def region_sizes(mask: Tensor) -> Optional[float]:
    """Mean size in patches of the connected masked regions (None when
    nothing is masked)."""
    regions = masked_regions(mask)
    n = int(regions.max())
    return int((regions > 0).sum()) / n if n else None


def image_measures(objects: Tensor, mask: Tensor,
                   structure: Optional[Tensor] = None,
                   thrown: Optional[Tensor] = None,
                   chance_draws: int = 0,
                   generator: Optional[torch.Generator] = None) -> Dict:
    """Every measure of one image's mask.

    Args:
        objects (Tensor): ``(h, w)`` patch object map
            (:func:`patch_objects`).
        mask (Tensor): ``(h, w)``, nonzero = masked.
        structure (Tensor, optional): ``(h, w)`` labels of the strategy's
            structure; default the plan's labels (visible / masked /
            thrown).
        thrown (Tensor, optional): ``(h, w)``, nonzero = thrown (AMT).
        chance_draws (int): Shuffles for :func:`chance_ari` (0: none).
        generator (torch.Generator, optional): For the shuffles.

    Returns:
        dict: ``object_ratio``, ``thrown_ratio`` (with ``thrown``),
        ``completeness``, ``ari``, ``mask_ari`` (of the plan's labels),
        ``chance_ari`` / ``chance_ari_std`` (with ``chance_draws``),
        ``region_size``, ``structure_size`` (patches per structure label:
        EHM's mean cut-node size, EPM's mean part size); None where a
        measure is undefined for the image (no object, no background,
        nothing masked); and the counts the pooled means need
        (``counts``).
    """
    labels = (mask != 0).long()
    if thrown is not None:
        labels = labels + 2 * (thrown != 0).long()
    structure = labels if structure is None else structure
    has_both = bool((objects != 0).any()) and bool((objects == 0).any())
    out = dict(
        object_ratio=object_ratio(mask, objects),
        completeness=completeness(mask, objects),
        ari=adjusted_rand_index(objects, structure) if has_both else None,
        mask_ari=adjusted_rand_index(objects, labels) if has_both else None,
        region_size=region_sizes(mask),
        structure_size=structure.numel() / int(
            torch.unique(structure).numel()),
        counts=dict(ratio=list(ratio_counts(mask, objects)),
                    complete=list(complete_objects(mask, objects))))
    if thrown is not None:
        out['thrown_ratio'] = object_ratio(thrown, objects)
        out['counts']['thrown'] = list(ratio_counts(thrown, objects))
    if chance_draws and has_both:
        out['chance_ari'], out['chance_ari_std'] = chance_ari(
            objects, structure, chance_draws, generator)
    return out


def _pooled_ratio(counts: Sequence[Sequence[int]]) -> Optional[float]:
    on, masked, obj, n = (sum(c[i] for c in counts) for i in range(4))
    return (on / masked) / (obj / n) if masked and obj else None


def _mean(values: List) -> Optional[float]:
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def summarize(images: Sequence[Dict]) -> Dict:
    """The means over images of :func:`image_measures`.

    ``object_ratio`` and ``thrown_ratio`` pool the patches of all images
    with object and background patches (the ratio of the summed counts);
    ``completeness`` pools their objects (every object counts once);
    ``ari``, ``mask_ari``, ``chance_ari``, ``region_size`` and
    ``structure_size`` are means
    over the images where they are defined, ``chance_ari_std`` the root
    mean square of the per-image spreads; ``ari_sem`` the standard error
    of the mean ARI over images.
    """
    done, total = (sum(m['counts']['complete'][i] for m in images)
                   for i in (0, 1))
    out = dict(
        images=len(images),
        object_ratio=_pooled_ratio([m['counts']['ratio'] for m in images]),
        completeness=done / total if total else None,
        objects=total)
    for key in ('ari', 'mask_ari', 'chance_ari', 'region_size',
                'structure_size'):
        out[key] = _mean([m.get(key) for m in images])
    aris = [m['ari'] for m in images if m.get('ari') is not None]
    out['ari_sem'] = (float(torch.tensor(aris, dtype=torch.float64).std())
                      / len(aris)**0.5 if len(aris) > 1 else None)
    spreads = [m['chance_ari_std'] for m in images
               if m.get('chance_ari_std') is not None]
    out['chance_ari_std'] = (sum(s * s for s in spreads) / len(spreads)
                             )**0.5 if spreads else None
    if any('thrown' in m['counts'] for m in images):
        out['thrown_ratio'] = _pooled_ratio(
            [m['counts']['thrown'] for m in images if 'thrown' in
             m['counts']])
    return out
