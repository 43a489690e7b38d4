#!/usr/bin/env bash
# Train LeNet-5 on Fashion-MNIST briefly, compress it with every recipe, and print the results table.
#   bash experiments/compress_lenet5_fashion_mnist.sh [RUN_DIR]
set -euo pipefail
RUN=${1:-/tmp/compress_fm}
python -m jaxdl.train data=fashion_mnist trainer.epochs=3 trainer.batch_size=128 trainer.progress=false hydra.run.dir="$RUN"
for recipe in int8 int8_dynamic int8_static int4 int4_qat prune90 prune90_int8 channels50; do
  python -m xai.compress.app run_dir="$RUN" compress="$recipe"
done
# the first conv kept whole: a narrower 1-input-channel conv is slower on XLA:CPU (experiments/RESULTS.md)
python -m xai.compress.app run_dir="$RUN" compress=channels50 'compress.channels.skip=[conv1]' compress.name=channels50_conv1
python experiments/compress_table.py "$RUN"/compress/*/report.json
