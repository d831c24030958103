#!/usr/bin/env bash
# Usage: tools/dist_test.sh CONFIG CHECKPOINT NUM_PROCS [test.py options]
set -euo pipefail
CONFIG=$1
CHECKPOINT=$2
NPROCS=$3
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}
cd "$(dirname "$0")/.."
PYTHONPATH="$(pwd):${PYTHONPATH:-}" "$PYTHON" -m torch.distributed.run --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="$PORT" --nproc_per_node="$NPROCS" \
    tools/test.py "$CONFIG" "$CHECKPOINT" --launcher pytorch "${@:4}"
