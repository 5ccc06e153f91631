#!/usr/bin/env bash
# Train on a Slurm cluster: one task per GPU, started by srun, each
# running tools/train.py with --launcher slurm (mmengine reads the rank,
# world size and master address from Slurm's variables).
#
# Usage: tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
#   e.g. GPUS=16 tools/slurm_train.sh gpu mae-ehm \
#            configs/mae/mae_vit-base-p16_ehm-mask_8xb512-amp-coslr-300e_in1k.py \
#            work_dirs/mae_ehm --resume
# Environment (OpenMMLab's names and defaults):
#   GPUS           tasks in all (default 8); GPUS / GPUS_PER_NODE nodes
#   GPUS_PER_NODE  tasks and GPUs per node (default 8; 0 = no --gres, a CPU
#                  partition)
#   CPUS_PER_TASK  CPU cores per task for the data loaders (default 5)
#   SRUN_ARGS      more srun options, e.g. "--quotatype=auto --time=72:00:00"
#   PYTHON         interpreter on the nodes (default: an activated
#                  environment's, else the repository's .venv, else python
#                  from the PATH; the script says which)
#   MASTER_PORT    rendezvous port (mmengine's default 29500)
usage() {
    echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [tools/train.py args...]" >&2
}
# shellcheck source=tools/launch_common.sh
source "$(dirname "$0")/launch_common.sh"
[ $# -ge 4 ] || fail "expected PARTITION, JOB_NAME, CONFIG and WORK_DIR, got $# argument(s)"
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
WORK_DIR=$4
shift 4
[ -f "$CONFIG" ] || fail "config file '$CONFIG' does not exist"
slurm_settings

slurm_launch "$PARTITION" "$JOB_NAME" train.py "$CONFIG" --work-dir="$WORK_DIR" \
    --launcher=slurm "$@"
