# Shared by slurm_up.sh and slurm_down.sh: ports, pid files and small helpers.
# shellcheck shell=bash
DB_PORT=16306
CTLD_PORT=16817
SLURMD_PORT=16818
DBD_PORT=16819
PID_FILES=(slurmd.pid slurmctld.pid slurmdbd.pid mariadbd.pid munged.pid)

die() { echo "error: $*" >&2; exit 1; }

pid_alive() {  # pid_alive PID_FILE: the recorded process still runs
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for WHAT COMMAND...: retry COMMAND for up to 60 s
  local what=$1; shift
  for _ in $(seq 300); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  die "timed out waiting for $what (logs in $STATE/log)"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_idle() { [ "$(sinfo -h -N -o %T 2>/dev/null)" = idle ]; }

cluster_registered() { sacctmgr -n -P list cluster format=cluster 2>/dev/null | grep -qx jaxdl; }
