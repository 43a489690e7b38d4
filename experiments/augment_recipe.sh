#!/usr/bin/env bash
# Issue 25's regularisers on a zoo model, same budget, 3 seeds per arm: LeNet-5 on 6,000 stratified
# Fashion-MNIST training images (the low-data regime these regularisers are meant for), 15 epochs,
# the RESULTS recipe otherwise (experiment=fashion_mnist_lenet5), the full 10,000-image test set.
#   bash experiments/augment_recipe.sh OUT ARM...     ARM: base | ema | mixup | mix_ema | re_ra | mix_ema_re_ra
# Each run's test accuracy is in OUT/<arm>_s<seed>/results.json.
set -euo pipefail
out=$1; shift
common=(experiment=fashion_mnist_lenet5 +data.train_subset=6000 trainer.epochs=15 trainer.progress=false)
mix_ema=(data.augment.mixup=0.2 data.augment.cutmix=1.0 trainer.ema_decay=0.99 trainer.eval_weights=ema)
re_ra=(data.augment.random_erasing.p=0.25 data.augment.randaugment.n=2 data.augment.randaugment.m=5)
for arm in "$@"; do
  case $arm in
    base) extra=() ;;
    ema) extra=(trainer.ema_decay=0.99 trainer.eval_weights=ema) ;;
    mixup) extra=(data.augment.mixup=0.2) ;;
    mix_ema) extra=("${mix_ema[@]}") ;;
    re_ra) extra=("${re_ra[@]}") ;;
    mix_ema_re_ra) extra=("${mix_ema[@]}" "${re_ra[@]}") ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
  for seed in 0 1 2; do
    python -m jaxdl.train "${common[@]}" "${extra[@]}" trainer.seed=$seed hydra.run.dir="$out/${arm}_s$seed"
  done
done
