#!/usr/bin/env bash
# The Fashion-MNIST zoo on ONE GPU: every conf/experiment/fashion_mnist_* recipe at once (bf16 compute),
# then, on the trained ResNet-18, the compression recipes, the faithfulness table and an explanation report;
# and LIME's speed against the `lime` package on the accelerator (the explain section's float LeNet-5).
#   bash experiments/zoo_gpu_runs.sh [SECONDS]   # wall-clock budget (default 560); writes runs/zoo_gpu/
#   ONLY="googlenet lime" bash experiments/zoo_gpu_runs.sh   # a selection (resnet18 brings its compression chain)
# Small models leave an H100 mostly idle, so running them side by side costs little per model.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
OUT_DIR=runs/zoo_gpu
END=$(( $(date +%s) + ${1:-560} ))
left() { echo $(( END - $(date +%s) - ${1:-0} )); }  # seconds until the budget ends, minus a margin
mkdir -p $OUT_DIR
train() {  # name, then jaxdl-train overrides
  local name=$1; shift
  local start=$(date +%s)
  timeout "$(left 120)" "$PY" -m jaxdl.train "$@" trainer.progress=false \
    hydra.run.dir=$OUT_DIR/$name > $OUT_DIR/$name.log 2>&1
  local rc=$?
  echo "$name rc=$rc seconds=$(( $(date +%s) - start )) :: $*" >> $OUT_DIR/summary.txt
  return $rc
}
only() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }
for m in alexnet googlenet vgg16 gru lstm vit mlp squeezenet; do
  only $m && train $m experiment=fashion_mnist_$m trainer.compute_dtype=bfloat16 &
done
if only lime; then
  { train lenet5_explain data=fashion_mnist trainer.epochs=2 && timeout "$(left 20)" "$PY" experiments/bench_lime.py \
      --run-dir $OUT_DIR/lenet5_explain --out $OUT_DIR/bench_lime_trained.json > $OUT_DIR/bench_lime.log 2>&1; } &
fi
only resnet18 || { wait; cat $OUT_DIR/summary.txt; exit; }
train resnet18 experiment=fashion_mnist_resnet18 trainer.compute_dtype=bfloat16
resnet=$OUT_DIR/resnet18
for recipe in int8 int4 prune90 channels50; do
  timeout "$(left 20)" "$PY" -m xai.compress.app run_dir=$resnet compress=$recipe > $OUT_DIR/resnet18_$recipe.log 2>&1 &
done
timeout "$(left 20)" "$PY" experiments/faithfulness.py --run-dir $resnet --images 256 > $OUT_DIR/resnet18_faithfulness.log 2>&1 &
timeout "$(left 20)" "$PY" -m xai.explain.app run_dir=$resnet hydra.run.dir=$resnet/explain/report > $OUT_DIR/resnet18_explain.log 2>&1 &
wait
cat $OUT_DIR/summary.txt
