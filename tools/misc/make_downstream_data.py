"""Write the small generated downstream data sets of the CPU demo configs.

ADE20K layout for the tiny UperNet (``configs/demo/downstream/upernet_*``)
and COCO instance layout for the tiny Mask R-CNN
(``configs/demo/downstream/mask-rcnn_*``): noisy backgrounds with filled
rectangles, the data the transfer smoke tests use, at a size that trains in
minutes on a CPU. Existing files are kept (a second call is cheap).

Usage:
    python tools/misc/make_downstream_data.py [--task ade20k coco]
        [--ade20k-out data/rects-ade20k-64px] [--coco-out data/rects-coco-64px]
        [--num 128] [--num-val 32] [--size 64] [--seed 0]
"""
import argparse

from mmmask.datasets.downstream_synthetic import make_ade20k, make_coco

#: where the CPU demo downstream configs read the data
DEFAULT_OUT = {
    'ade20k': 'data/rects-ade20k-64px',
    'coco': 'data/rects-coco-64px',
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Generate ADE20K- and COCO-format demo data')
    parser.add_argument('--task', nargs='+', choices=sorted(DEFAULT_OUT),
                        default=sorted(DEFAULT_OUT),
                        help='data sets to write (default: both)')
    parser.add_argument('--ade20k-out', default=DEFAULT_OUT['ade20k'])
    parser.add_argument('--coco-out', default=DEFAULT_OUT['coco'])
    parser.add_argument('--num', type=int, default=128,
                        help='training images per data set')
    parser.add_argument('--num-val', type=int, default=32,
                        help='validation images per data set')
    parser.add_argument('--size', type=int, default=64,
                        help='image side in pixels')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    if args.num < 1 or args.num_val < 1:
        parser.error('--num and --num-val must be at least 1')
    if args.size < 16:
        parser.error(f'--size {args.size}: give at least 16 pixels')
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    if 'ade20k' in args.task:
        make_ade20k(args.ade20k_out, args.num, args.num_val, args.size,
                    args.seed)
        print(f'ADE20K layout: {args.num} training and {args.num_val} '
              f'validation images in {args.ade20k_out}')
    if 'coco' in args.task:
        make_coco(args.coco_out, args.num, args.num_val, args.size,
                  args.seed)
        print(f'COCO layout: {args.num} training and {args.num_val} '
              f'validation images in {args.coco_out}')


if __name__ == '__main__':
    main()
