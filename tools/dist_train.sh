#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG NUM_PROCS [train.py options]
# One process per GPU (nccl), or per CPU worker (gloo) on a machine without GPUs.
set -euo pipefail
CONFIG=$1
NPROCS=$2
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}
cd "$(dirname "$0")/.."
PYTHONPATH="$(pwd):${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$PORT" --nproc_per_node="$NPROCS" \
    tools/train.py "$CONFIG" --launcher pytorch "${@:3}"
