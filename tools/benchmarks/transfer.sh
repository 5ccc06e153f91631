#!/usr/bin/env bash
# Run a downstream job from an mmmask pre-training checkpoint in one command:
# convert the encoder to the task's key layout, then train with the task's
# benchmark config and the converted weights.
#
# Usage: tools/benchmarks/transfer.sh TASK PRETRAIN_CKPT GPUS [train.py args...]
#   TASK: linear   ImageNet linear probe, 90 epochs   (mmpretrain)
#         finetune ImageNet fine-tune, 100 epochs     (mmpretrain)
#         upernet  UperNet, ADE20K 512x512, 160k iter  (mmseg)
#         maskrcnn Mask R-CNN, COCO, LSJ 100 epochs     (mmdet)
#   GPUS: processes; 1 runs tools/train.py, more run tools/dist_train.sh
# Environment: CONFIG (another config for the task), WORK_DIR (default
#   work_dirs/transfer/<config>_<checkpoint>), PREFIX (encoder key prefix,
#   default backbone.), PYTHON (default python), PORT (dist_train.sh).
set -euo pipefail

if [ "$#" -lt 3 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
TASK=$1
CKPT=$2
GPUS=$3
shift 3
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PYTHON=${PYTHON:-python}
PREFIX=${PREFIX:-backbone.}
BENCH="$ROOT/configs/benchmarks"

case "$TASK" in
    linear)
        TARGET=mmpretrain
        DEFAULT="$BENCH/mmpretrain/vit-base-p16_linear-probe_8xb2048-coslr-90e_in1k.py" ;;
    finetune)
        TARGET=mmpretrain
        DEFAULT="$BENCH/mmpretrain/vit-base-p16_fine-tune_8xb128-coslr-100e_in1k.py" ;;
    upernet)
        TARGET=mmseg
        DEFAULT="$BENCH/mmseg/upernet_vit-base-p16_8xb2-160k_ade20k-512x512.py" ;;
    maskrcnn)
        TARGET=mmdet
        DEFAULT="$BENCH/mmdet/mask-rcnn_vit-base-p16-sfp_8xb8-lsj-100e_coco.py" ;;
    *)
        echo "error: unknown TASK '$TASK': use linear, finetune, upernet or maskrcnn" >&2
        exit 2 ;;
esac
CONFIG=${CONFIG:-$DEFAULT}

if [ ! -f "$CKPT" ]; then
    echo "error: no such pre-training checkpoint: $CKPT" >&2
    exit 2
fi
if [ ! -f "$CONFIG" ]; then
    echo "error: no such config: $CONFIG" >&2
    exit 2
fi
case "$GPUS" in
    ''|*[!0-9]*|0)
        echo "error: GPUS must be a positive integer, got '$GPUS'" >&2
        exit 2 ;;
esac

NAME="$(basename "$CONFIG" .py)_$(basename "$CKPT" .pth)"
WORK_DIR=${WORK_DIR:-work_dirs/transfer/$NAME}
# the converted encoder is an input of the run: kept in a subfolder, where
# train.py's work-dir protection (earlier runs' *.pth) does not look
CONVERTED="$WORK_DIR/pretrained/backbone_$TARGET.pth"
mkdir -p "$WORK_DIR/pretrained"

PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" \
    "$ROOT/tools/model_converters/mmmask2$TARGET.py" "$CKPT" "$CONVERTED" \
    --prefix "$PREFIX"

if [ "$GPUS" -eq 1 ]; then
    PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" \
        "$ROOT/tools/train.py" "$CONFIG" --work-dir "$WORK_DIR" \
        --cfg-options model.backbone.init_cfg.checkpoint="$CONVERTED" "$@"
else
    PYTHON="$PYTHON" bash "$ROOT/tools/dist_train.sh" "$CONFIG" "$GPUS" \
        --work-dir "$WORK_DIR" \
        --cfg-options model.backbone.init_cfg.checkpoint="$CONVERTED" "$@"
fi
