"""Write the synthetic shapes image set used by the demo and tests.

Unlabelled (the demo's pre-training set, a flat folder of images)::

    python tools/misc/make_shapes_dataset.py --out data/shapes-64px
        [--num 512] [--size 64] [--seed 0]

Labelled, in ImageNet folder layout (``OUT/train/<class>/*.png`` with
``--num`` images and ``OUT/val/<class>/*.png`` with ``--num-val``; the
class is the kind of the largest visible shape: disc, rectangle or
triangle)::

    python tools/misc/make_shapes_dataset.py --labelled
        --out data/shapes-64px-labelled [--num 512] [--num-val 256]

Either way the ground truth goes to ``OUT-objects/`` (``--no-objects``
skips it): per image an object map at the image's relative path (0 =
background, ``i`` = the ``i``-th shape drawn) and ``objects.json`` with
every image's shapes and kinds (docs/mask_quality.md).

``--style single|texture|clutter`` draws a variant (one shape per image;
striped shapes and background; small distractors under one large shape;
``mmmask/datasets/shape_styles.py``); the default ``mixed`` is the demo's.
"""
import argparse

from mmmask.apis.tool_errors import run_tool
from mmmask.datasets.shape_styles import STYLES
from mmmask.datasets.synthetic import (DEFAULT_STYLE, make_labelled_shapes,
                                       make_shapes_dataset, write_object_maps)


def main() -> None:
    parser = argparse.ArgumentParser(description='Make the shapes dataset')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num', type=int, default=512,
                        help='images (training images with --labelled)')
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--labelled', action='store_true',
                        help='train/ and val/ splits with class folders')
    parser.add_argument('--num-val', type=int, default=256,
                        help='validation images (with --labelled)')
    parser.add_argument('--no-objects', action='store_true',
                        help='do not write the object maps (OUT-objects/)')
    parser.add_argument('--style', choices=(DEFAULT_STYLE, *STYLES),
                        default=DEFAULT_STYLE,
                        help='mixed: one to three shapes (the demo set); '
                        'single: one shape; texture: striped shape and '
                        'background; clutter: small distractors under one '
                        'large shape')
    args = parser.parse_args()
    if args.labelled:
        paths = make_labelled_shapes(args.out, args.num, args.num_val,
                                     args.size, args.seed, args.style)
        print(f'{len(paths["train"])} training and {len(paths["val"])} '
              f'validation images in {args.out}/{{train,val}}/<class>')
    else:
        paths = make_shapes_dataset(args.out, args.num, args.size, args.seed,
                                    args.style)
        print(f'{len(paths)} images in {args.out}')
    if not args.no_objects:
        objects = write_object_maps(args.out, args.num, args.size, args.seed,
                                    args.labelled, args.num_val,
                                    style=args.style)
        print(f'object maps and objects.json in {objects}')


if __name__ == '__main__':
    run_tool(main)
