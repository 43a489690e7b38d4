#!/usr/bin/env bash
# Issue 18's figures on ONE GPU in one go: ResNet-50 and ViT-B/16 at 224 px, jaxdl vs PyTorch compiled (with
# MFU, the profile's top ops, and the step fed from a JPEG folder by the streaming pipeline), then the
# zoo's two missing figures (GoogLeNet's 15-epoch Fashion-MNIST accuracy, LIME's speed vs the `lime` package).
#   bash experiments/gpu_scale_runs.sh [SECONDS]   # wall-clock budget (default 560); writes runs/gpu_scale/
# The benchmark gets its share first; the zoo runs get what is left (they need ~200 s on an H100).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT_DIR=runs/gpu_scale
END=$(( $(date +%s) + ${1:-560} ))
left() { echo $(( END - $(date +%s) - ${1:-0} )); }  # seconds until the budget ends, minus a margin
mkdir -p $OUT_DIR
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  "$PY" -c "import jax, torch, flax; print('jax', jax.__version__, 'flax', flax.__version__, 'torch', torch.__version__, jax.devices())"
  nproc; } > $OUT_DIR/machine.txt 2>&1
cat $OUT_DIR/machine.txt

JPEGS=${JPEGS:-/tmp/bench_jpegs}
[ -d $JPEGS ] || "$PY" experiments/bench_scale.py --make-jpegs $JPEGS --count 4096
timeout "$(left 210)" "$PY" experiments/bench_scale.py --input-folder $JPEGS --profile-dir $OUT_DIR/profile \
  --worker-timeout 170 --out $OUT_DIR/bench_scale.json 2>&1 | tee $OUT_DIR/bench_scale.log

# Two small JAX jobs share the GPU: neither may take 75% of its memory up front.
XLA_PYTHON_CLIENT_PREALLOCATE=false ONLY="googlenet lime" bash experiments/zoo_gpu_runs.sh "$(left 5)"
