#!/usr/bin/env bash
# Stage 1 on one GPU (the device machine: H200, Python 3.12, its own torch and transformers).
# Carried: .whl, the cp312 wheels that machine lacks (pydantic 2.14.3, pydantic_core 2.50.4,
# annotated-types 0.8.0, typing-inspection 0.4.5, rosbags 0.11.9, apsw 3.54.1.0, backports.zstd 1.8.0,
# lz4 4.4.5, ruamel.yaml 0.19.1), and .devdata (the episode bags as one tar.xz; an --init checkpoint).
# Results come back under $OUT: the best checkpoints as tars, metrics, the log.
# Usage: bash docs/results/20261204/device_stage1.sh CONFIG STEPS TRAIN_SECONDS DEVICE [sefm train sft options]
set -uo pipefail
CONFIG=$1 STEPS=$2 BUDGET=$3 DEVICE=$4
shift 4
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
log() { echo "[$(date +%T)] $*"; }
log start; nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader 2>/dev/null
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src/sefm_policy:$PWD/src/sefm_reward:$PWD/src/sefm_trainer:$PWD/src/sefm_sim_bridge:$PWD/src/sefm
export PYTHONUNBUFFERED=1 ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
DATA=/tmp/data; mkdir -p $DATA
log untar; xz -dc -T0 .devdata/*.tar.xz | tar xf - -C $DATA || exit 1
RUN=/tmp/run
log train
timeout --signal=KILL "$BUDGET" python3 -c "import sys; from sefm.cli import main; sys.exit(main())" \
  train sft --config "$CONFIG" --data $DATA/$(ls $DATA) --out $RUN --steps "$STEPS" --device "$DEVICE" "$@" \
  2>&1 | tr '\r' '\n' | awk 'NR % 50 == 1 || /val|rror|Traceback|File|best/' | tee "$OUT/train.log"
log "train exited ${PIPESTATUS[0]}"
cp $RUN/metrics.jsonl "$OUT/" 2>/dev/null
for c in best_bc best_steps; do
  [ -d $RUN/$c ] && tar cf "$OUT/$c.tar" -C $RUN $c
done
tar czf "$OUT/tensorboard.tgz" -C $RUN tensorboard 2>/dev/null
ls -la "$OUT"; log done
