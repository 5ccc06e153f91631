"""Write the synthetic shapes image set used by the demo and tests.

Usage:
    python tools/misc/make_shapes_dataset.py --out data/shapes-64px
        [--num 512] [--size 64] [--seed 0]
"""
import argparse

from mmmask.datasets.synthetic import make_shapes_dataset


def main() -> None:
    parser = argparse.ArgumentParser(description='Make the shapes dataset')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--num', type=int, default=512)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    paths = make_shapes_dataset(args.out, args.num, args.size, args.seed)
    print(f'{len(paths)} images in {args.out}')


if __name__ == '__main__':
    main()
