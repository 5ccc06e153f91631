#!/usr/bin/env bash
# Usage: tools/benchmarks/mask_rcnn_coco.sh PRETRAIN_CKPT GPUS [train.py args...]
# Converts the checkpoint and trains; see tools/benchmarks/transfer.sh.
exec bash "$(dirname "$0")/transfer.sh" maskrcnn "$@"
