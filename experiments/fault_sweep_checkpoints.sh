#!/bin/bash
# The issue-28 reproductions on the default digits run (5 epochs: steps 120 best, 160, 200), at this branch.
# usage: experiments/fault_sweep_checkpoints.sh [SCRATCH_DIR]   (default /tmp/fault_sweep; it is emptied)
REPO=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH=$REPO JAX_COMPILATION_CACHE_DIR=${JAX_COMPILATION_CACHE_DIR:-/tmp/jaxdl_xla_cache}
cd "$REPO"
S=${1:-/tmp/fault_sweep}; R=$S/R
mkdir -p $S
rm -rf $S/R $S/c_*
python -m jaxdl.apps.train hydra.run.dir=$R trainer.epochs=5 trainer.progress=false > $S/R.out 2>&1; echo "R rc $?"
flip() { python - "$@" <<'PY'
import sys, pathlib
path, needle = pathlib.Path(sys.argv[1]), sys.argv[2]
b = bytearray(path.read_bytes())
i = b.index(needle.encode()) + len(needle) if needle else len(b) // 2
b[i] ^= 0x01 if needle else 0x10
path.write_bytes(bytes(b))
PY
}
big() { ls -S $1/state/ocdbt.process_0/d/* | head -1; }
run() { python -m jaxdl.apps.train hydra.run.dir=$1 trainer.epochs=5 trainer.progress=false > $1.out 2>&1; rc=$?; echo "$2: rc $rc, stderr lines $(grep -vc '^\[' $1.out), warnings: $(grep -c WARNING $1.out)"; }
for c in meta200 best120 all manifest; do cp -r $R $S/c_$c; done
flip $S/c_meta200/checkpoints/200/meta/metadata '"epoch": '
run $S/c_meta200 "flip epoch in 200/meta/metadata"
flip "$(big $S/c_best120/checkpoints/120)" ''
run $S/c_best120 "flip a weight byte of best step 120"
for s in 120 160 200; do flip $S/c_all/checkpoints/$s/meta/metadata '"epoch": '; done
run $S/c_all "flip epoch in every step's meta"
echo '{}' > $S/c_manifest/checkpoints/200/checksums/metadata; flip "$(big $S/c_manifest/checkpoints/200)" ''
python -c "import jaxdl; jaxdl.load_model('$S/c_manifest', 'last')" 2>&1 | tail -1
run $S/c_manifest "empty manifest + flipped weight in 200"
cp -r $R $S/c_load; flip $S/c_load/checkpoints/120/meta/metadata '"val/accuracy": 0.'
python -c "import jaxdl; jaxdl.load_model('$S/c_load')" 2>&1 | tail -1
python -m jaxdl.apps.import_model source=torchvision:squeezenet1_1 weights=none out=$R overwrite=true 2>&1 | tail -1; echo "import rc ${PIPESTATUS[0]}"
