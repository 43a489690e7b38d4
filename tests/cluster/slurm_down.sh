#!/usr/bin/env bash
# Stop the cluster slurm_up.sh started: cancel its jobs, then stop each daemon by its recorded pid.
# The logs stay in $JAXDL_SLURM_DIR/log (/tmp/jaxdl-slurm/log); slurm_up.sh starts from a clean state.
set -uo pipefail

STATE=${JAXDL_SLURM_DIR:-/tmp/jaxdl-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/slurm_common.sh
source "$HERE/slurm_common.sh"
export SLURM_CONF=$STATE/etc/slurm.conf

if pid_alive "$STATE/run/slurmctld.pid" && pid_alive "$STATE/run/slurmd.pid"; then
  scancel --full --quiet --cluster=jaxdl --user=root 2>/dev/null || scancel --quiet --user=root 2>/dev/null
  for _ in $(seq 100); do  # up to 20 s for the jobs' processes to end (KillWait=5)
    [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

pids=()  # all at once: each daemon takes 1-3 s to stop, and this cluster's state is thrown away anyway
for pid_file in "${PID_FILES[@]}"; do
  if pid_alive "$STATE/run/$pid_file"; then
    pids+=("$(cat "$STATE/run/$pid_file")")
    kill -TERM "${pids[-1]}"
  fi
  rm -f "$STATE/run/$pid_file"
done
for pid in "${pids[@]}"; do
  for _ in $(seq 75); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "pid $pid did not stop in 15 s; killing it" >&2
    kill -KILL "$pid"
  fi
done
echo "Slurm is down (logs in $STATE/log)"
