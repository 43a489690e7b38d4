#!/usr/bin/env bash
# Issue 25's regularisers on a zoo model where they have something to fix: LeNet-5 overfitting 1,000 stratified
# Fashion-MNIST training images (train accuracy 1.0 by epoch ~27, validation loss rising after) over 60 epochs.
# The RESULTS recipe otherwise (experiment=fashion_mnist_lenet5: adam 3e-3 one-cycle, batch 64) but without its
# label smoothing, so the baseline has no regulariser; every arm has the same epochs, steps, batch and schedule;
# 3 seeds per arm; the full 10,000-image test set. One training process at a time.
#   bash experiments/augment_recipe.sh OUT [ARM...]     ARM: base | mixcut | ema | ls | all (default: all five)
#   SUBSET=1000 EPOCHS=60 change the regime. The table (best-checkpoint and last-epoch test accuracy) ends the run.
set -euo pipefail
out=$1; shift
arms=("$@"); [ ${#arms[@]} -gt 0 ] || arms=(base mixcut ema ls all)
common=(experiment=fashion_mnist_lenet5 "+data.train_subset=${SUBSET:-1000}" "trainer.epochs=${EPOCHS:-60}"
  trainer.label_smoothing=0 trainer.progress=false)
mixcut=(data.augment.mixup=0.2 data.augment.cutmix=1.0)
ema=(trainer.ema_decay=0.99 trainer.eval_weights=ema)
smooth=(trainer.label_smoothing=0.1)
for arm in "${arms[@]}"; do
  case $arm in
    base) extra=() ;;
    mixcut) extra=("${mixcut[@]}") ;;
    ema) extra=("${ema[@]}") ;;
    ls) extra=("${smooth[@]}") ;;
    all) extra=("${mixcut[@]}" "${ema[@]}" "${smooth[@]}") ;;
    *) echo "error: unknown arm $arm (base | mixcut | ema | ls | all)" >&2; exit 2 ;;
  esac
  for seed in 0 1 2; do
    python -m jaxdl.train "${common[@]}" "${extra[@]}" trainer.seed=$seed hydra.run.dir="$out/${arm}_s$seed"
  done
done
python experiments/augment_recipe_table.py "$out"
