#!/usr/bin/env bash
# Short CPU runs of the zoo on Fashion-MNIST (few epochs and/or a stratified training subset):
# a smoke measurement on a shared 2-core CPU, NOT the converged figures the experiment files aim at.
#   bash experiments/zoo_cpu_runs.sh            # writes runs/zoo_cpu/<name>/results.json and a log
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
run() {  # name, then jaxdl-train overrides
  local name=$1; shift
  local start=$(date +%s)
  nice -n 10 "$PY" -m jaxdl.train "$@" trainer.progress=false hydra.run.dir="runs/zoo_cpu/$name" > "runs/zoo_cpu/$name.log" 2>&1
  echo "$name rc=$? seconds=$(( $(date +%s) - start )) :: $*" >> runs/zoo_cpu/summary.txt
}
mkdir -p runs/zoo_cpu
only() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }  # ONLY="gru vit" runs a selection
only mlp && run mlp experiment=fashion_mnist_mlp trainer.epochs=5
only signals1d_gru && run signals1d_gru experiment=signals1d_gru trainer.epochs=20
only gru && run gru experiment=fashion_mnist_gru trainer.epochs=1 +data.train_subset=20000 data.val_fraction=0.02
only squeezenet1_1 && run squeezenet1_1 experiment=fashion_mnist_squeezenet trainer.epochs=2 +data.train_subset=10000 data.val_fraction=0.02
only vit && run vit experiment=fashion_mnist_vit trainer.epochs=2 +data.train_subset=10000 data.val_fraction=0.02
only alexnet && run alexnet experiment=fashion_mnist_alexnet trainer.epochs=1 +data.train_subset=5000 data.val_fraction=0.02
only resnet18 && run resnet18 experiment=fashion_mnist_resnet18 trainer.epochs=1 +data.train_subset=3000 data.val_fraction=0.02
only googlenet && run googlenet experiment=fashion_mnist_googlenet trainer.epochs=1 +data.train_subset=12800 data.val_fraction=0.02
