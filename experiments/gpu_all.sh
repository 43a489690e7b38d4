#!/usr/bin/env bash
# Every GPU figure the open issues need, from ONE prepared script that fits a 10-minute device call:
#   27  bench_scale: ViT-B/16 with fused vs explicit attention and the other attempts, ResNet-50 attempts
#       and batch 512, each vs PyTorch compiled in the same run; asserts cuDNN attention in HLO and trace
#   22  the step fed from a JPEG folder (bench_scale --input-folder) and bench_input.py's throughput rows
#   23  export latency (experiments/bench_export.py, when that issue has landed)
#   26  explaining the whole Fashion-MNIST test set (explain.images.count=all), one step per method
#
#   bash experiments/gpu_all.sh [--smoke] [OUT_DIR]     # OUT_DIR defaults to $OUT, else runs/gpu_all
#
# Each step is guarded: a missing script or option, a failure or a step past its time cap is recorded
# (status, seconds, the last error line) and the next step runs. Results: OUT_DIR/gpu_all.json (every
# step's status and JSON), OUT_DIR/gpu_all.log (all output); scratch lives in $WORK (default /tmp/gpu_all),
# so no more than those two files come back from a device call. --smoke rehearses every step on a CPU
# (bench_scale --smoke, tiny folders, the digits data) and asserts nothing about kernels.
# Fashion-MNIST on a device machine without network: copy its IDX files into the repo (ignored folder
# .data/fashion-mnist), `carry` it, and the script sets JAXDL_DATA=.data.
set -uo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
if [ "${1:-}" = --smoke ]; then SMOKE=1; shift; fi
OUT_DIR=${1:-${OUT:-runs/gpu_all}}
WORK=${WORK:-/tmp/gpu_all}
PY=${PYTHON:-python}
END=$(($(date +%s) + ${BUDGET:-570}))
mkdir -p "$OUT_DIR" "$WORK/steps"
rm -f "$WORK"/steps/*
LOG=$OUT_DIR/gpu_all.log
: >"$LOG"
[ -d .data/fashion-mnist ] && export JAXDL_DATA=$PWD/.data
export PYTHONUNBUFFERED=1

# record NAME STATUS SECONDS DETAIL: one line of the final JSON
record() {
  "$PY" -c 'import json,sys; print(json.dumps(dict(step=sys.argv[1], status=sys.argv[2], seconds=float(sys.argv[3]), detail=sys.argv[4])))' \
    "$1" "$2" "$3" "$4" >"$WORK/steps/$(date +%s%N)_$1.status"
  printf '== %-28s %-8s %6ss  %s\n' "$1" "$2" "$3" "$4" | tee -a "$LOG"
}

# step NAME CAP_SECONDS COMMAND...: run with a time cap (never past the budget), record how it ended
step() {
  local name=$1 cap=$(($2 * CAP_FACTOR)) left
  shift 2
  left=$((END - $(date +%s) - 15))
  if [ "$left" -lt 20 ]; then record "$name" skipped 0 "budget spent"; return; fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $name (cap ${cap}s): $*" >>"$LOG"
  local start rc
  start=$(date +%s)
  timeout "$cap" "$@" >"$WORK/$name.out" 2>&1
  rc=$?
  cat "$WORK/$name.out" >>"$LOG"
  local took=$(($(date +%s) - start)) last
  last=$(grep -E '^(error|Error|.*Error:)' "$WORK/$name.out" | tail -1 | cut -c1-300)
  case $rc in
    0) record "$name" ok "$took" "" ;;
    124) record "$name" timeout "$took" "cap ${cap}s" ;;
    *) record "$name" failed "$took" "rc $rc: ${last:-$(tail -1 "$WORK/$name.out" | cut -c1-300)}" ;;
  esac
}

# needs NAME FILE [STRING]: true if FILE exists (and contains STRING, e.g. an option); else records a skip
needs() {
  if [ ! -f "$2" ]; then record "$1" skipped 0 "$2 does not exist yet"; return 1; fi
  if [ -n "${3:-}" ] && ! grep -q -- "$3" "$2"; then record "$1" skipped 0 "$2 has no '$3' yet"; return 1; fi
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import jax, flax; print('jax', jax.__version__, 'flax', flax.__version__, jax.devices())"
  echo "$(nproc) CPU cores, git $(git rev-parse --short HEAD 2>/dev/null)"; } >"$WORK/machine.txt" 2>&1
cat "$WORK/machine.txt" | tee -a "$LOG"

if [ $SMOKE = 1 ]; then
  CAP_FACTOR=${CAP_FACTOR:-4}  # ViT-B/16 and ResNet-50 at 224 px compile slowly on a (loaded) 2-core CPU
  SCALE=(--smoke --peers jaxdl)
  VIT_VARIANTS=base,explicit_attention
  RESNET_VARIANTS=base,bn_bf16_stats
  JPEG_COUNT=16
  INPUT_ARGS=(--workers 1 --images 1000 --photos 1000 --repeats 1)  # fewer leave the 1% test split empty
  EXPLAIN_DATA=(data=digits model=lenet5 trainer.epochs=1 trainer.progress=false)
  EXPLAIN_METHODS=(gradcam)
else
  CAP_FACTOR=1
  SCALE=(--steps 10 --rounds 3 --warmup 3 --worker-timeout 150)
  VIT_VARIANTS=base,explicit_attention,xla_cudnn_layer_norm,bf16_params
  RESNET_VARIANTS=base,bn_bf16_stats,xla_autotune4
  JPEG_COUNT=2048
  INPUT_ARGS=(--workers 8 --images 1024 --photos 1200 --repeats 1)
  EXPLAIN_DATA=(data=fashion_mnist model=lenet5 trainer.epochs=1 trainer.progress=false)
  EXPLAIN_METHODS=(gradcam ig lime)
fi

# --- issue 27: ViT-B/16 attention variants (the base row traced), then ResNet-50 attempts and batch 512
if needs vit_attention experiments/bench_scale.py explicit_attention; then
  step vit_attention 240 "$PY" experiments/bench_scale.py "${SCALE[@]}" --models vit_b16 --variants $VIT_VARIANTS \
    --profile-dir "$WORK/profile" --out "$WORK/vit_attention.json"
  if [ -f "$WORK/vit_attention.json" ]; then  # the fused kernel must be what ran (no claim on a CPU)
    step vit_fused_kernel_check 30 "$PY" - "$WORK/vit_attention.json" $SMOKE <<'EOF'
import json, sys
rows = [r for r in json.load(open(sys.argv[1]))["results"] if r.get("peer") == "jaxdl"]
assert rows, "no jaxdl base row"
row = rows[0]
print({k: row.get(k) for k in ("device_kind", "fused_attention_in_hlo", "fused_attention_in_trace")})
if sys.argv[2] == "0":
    assert row.get("fused_attention_in_hlo"), "error: no __cudnn$fmha custom call in the compiled ViT step"
    assert row.get("fused_attention_in_trace"), "error: no fused attention kernel among the trace's top ops"
EOF
  fi
fi
if needs resnet_attempts experiments/bench_scale.py bn_bf16_stats; then
  step resnet_attempts 150 "$PY" experiments/bench_scale.py "${SCALE[@]}" --models resnet50 \
    --variants $RESNET_VARIANTS --out "$WORK/resnet_attempts.json"
  [ $SMOKE = 1 ] || step resnet_batch512 90 "$PY" experiments/bench_scale.py "${SCALE[@]}" --models resnet50 \
    --batch 512 --out "$WORK/resnet_batch512.json"
fi

# --- issue 22: the step fed from a JPEG folder, and the input pipeline alone
JPEGS=$WORK/jpegs
if needs input_step experiments/bench_scale.py --input-folder; then
  [ -d "$JPEGS/train" ] || "$PY" experiments/bench_scale.py --make-jpegs "$JPEGS" --count $JPEG_COUNT >>"$LOG" 2>&1
  step input_step 90 "$PY" experiments/bench_scale.py "${SCALE[@]}" --models resnet50 --peers jaxdl \
    --input-folder "$JPEGS" --out "$WORK/input_step.json"
fi
needs input_throughput experiments/bench_input.py throughput &&
  step input_throughput 60 "$PY" experiments/bench_input.py throughput "${INPUT_ARGS[@]}" \
    --work "$WORK/bench_input" --out "$WORK/input_throughput.json"

# --- issue 23: export latency
needs export_latency experiments/bench_export.py &&
  step export_latency 60 "$PY" experiments/bench_export.py --out "$WORK/export_latency.json"

# --- issue 26: a whole test set explained, one timed step per method
step explain_train 60 "$PY" -m jaxdl.apps.train "${EXPLAIN_DATA[@]}" hydra.run.dir="$WORK/explain_run"
if [ -f "$WORK/explain_run/results.json" ]; then
  for method in "${EXPLAIN_METHODS[@]}"; do
    step "explain_all_$method" 120 "$PY" -m xai.explain.app run_dir="$WORK/explain_run" \
      "explain.methods=[$method]" explain.images.count=all hydra.run.dir="$WORK/explain_$method"
  done
else
  record explain_all skipped 0 "no trained run to explain"
fi

# --- one JSON with every step's status and result
"$PY" - "$WORK" "$OUT_DIR/gpu_all.json" $SMOKE <<'EOF'
import json, sys
from pathlib import Path
work, out = Path(sys.argv[1]), Path(sys.argv[2])
steps = [json.loads(p.read_text()) for p in sorted((work / "steps").glob("*.status"))]
for s in steps:
    result = work / f"{s['step']}.json"
    if result.exists():
        s["result"] = json.loads(result.read_text())
summary = {"smoke": sys.argv[3] == "1", "machine": (work / "machine.txt").read_text(), "steps": steps}
out.write_text(json.dumps(summary, indent=2) + "\n")
print("\n".join(f"{s['step']:28s} {s['status']}" for s in steps))
EOF
