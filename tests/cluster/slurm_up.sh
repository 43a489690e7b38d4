#!/usr/bin/env bash
# A one-node Slurm cluster with accounting on this machine, for the `slurm` tests and for trying
# `hydra/launcher=slurm` by hand (as root; ~10 s with the packages installed):
#
#   sudo tests/cluster/slurm_up.sh            # installs slurm-wlm, munge, slurmdbd, mariadb-server if missing
#   export SLURM_CONF=/tmp/jaxdl-slurm/etc/slurm.conf   # what it prints; then sbatch, squeue, sacct, ...
#   sudo tests/cluster/slurm_down.sh          # cancels the jobs, stops the daemons by their recorded pids
#
# Everything (config, munge key, MariaDB data, spool, logs, pids) lives in $JAXDL_SLURM_DIR
# (/tmp/jaxdl-slurm); the daemons listen on 127.0.0.1 only, on fixed ports (MariaDB 16306,
# slurmctld 16817, slurmd 16818, slurmdbd 16819). The node is `localhost` (the machine's own
# hostname need not resolve) with 4 CPUs, partition `cpu`. A requeued job restarts after ~5 s
# (AuthInfo=cred_expire=5; Slurm's default is 120 s). Refuses to start over a running cluster.
set -euo pipefail

STATE=${JAXDL_SLURM_DIR:-/tmp/jaxdl-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/cluster/slurm_common.sh
source "$HERE/slurm_common.sh"

[ "$(id -u)" = 0 ] || die "must run as root (the daemons and the test jobs run as root)"
for pid_file in "${PID_FILES[@]}"; do
  if pid_alive "$STATE/run/$pid_file"; then
    die "a cluster is already running from $STATE (pid $(cat "$STATE/run/$pid_file") in $pid_file); run slurm_down.sh first"
  fi
done

# --- packages -------------------------------------------------------------------------------------
missing=()
for tool in slurmctld:slurm-wlm slurmd:slurm-wlm sbatch:slurm-client slurmdbd:slurmdbd munged:munge mariadbd:mariadb-server; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  echo "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends \
    slurm-wlm slurm-client slurmdbd munge mariadb-server >/dev/null
  # the packages' own init scripts may have started system-wide daemons; ours are separate (own ports, sockets)
fi

# --- state directory and config --------------------------------------------------------------------
rm -rf "$STATE"
mkdir -p "$STATE"/{etc,run,log,ctld,spool,munge,mysql}
chmod 755 "$STATE"
DB_PASSWORD=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')

cat >"$STATE/etc/slurm.conf" <<EOF
ClusterName=jaxdl
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket,cred_expire=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$STATE/munge/munge.socket
ReturnToService=2
KillWait=5
MailProg=/bin/true
MessageTimeout=10
SlurmdParameters=config_overrides
NodeName=localhost NodeAddr=127.0.0.1 CPUs=4 State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

cat >"$STATE/etc/slurmdbd.conf" <<EOF
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASSWORD
StorageLoc=slurm_acct_db
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
EOF
chmod 600 "$STATE/etc/slurmdbd.conf"
export SLURM_CONF=$STATE/etc/slurm.conf

# --- munge: its own key and socket, run as the munge user ------------------------------------------
head -c 1024 /dev/urandom >"$STATE/munge/munge.key"
chmod 400 "$STATE/munge/munge.key"
chown -R munge:munge "$STATE/munge"
chmod 711 "$STATE/munge"  # clients reach the socket; only the munge user reads the key
runuser -u munge -- munged --socket="$STATE/munge/munge.socket" --key-file="$STATE/munge/munge.key" \
  --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" --seed-file="$STATE/munge/munged.seed"
wait_for "munged" test -S "$STATE/munge/munge.socket"
cp "$STATE/munge/munged.pid" "$STATE/run/munged.pid"

# --- MariaDB on 127.0.0.1 with a `slurm` user -------------------------------------------------------
mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
  --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 || { cat "$STATE/log/mariadb-install.log"; die "mariadb-install-db failed"; }
mariadbd --no-defaults --user=root --datadir="$STATE/mysql" --socket="$STATE/run/mysqld.sock" \
  --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve --pid-file="$STATE/run/mariadbd.pid" \
  --log-error="$STATE/log/mariadb.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
wait_for "mariadbd" mariadb --no-defaults -S "$STATE/run/mysqld.sock" -u root -e "select 1"
mariadb --no-defaults -S "$STATE/run/mysqld.sock" -u root <<EOF
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
EOF

# --- the Slurm daemons -------------------------------------------------------------------------------
slurmdbd
wait_for "slurmdbd" port_open "$DBD_PORT"
slurmctld -i
wait_for "slurmctld" scontrol ping
slurmd -N localhost
wait_for "the node to be idle" node_idle
wait_for "the cluster in the accounting database" cluster_registered

echo "Slurm is up: export SLURM_CONF=$SLURM_CONF"
