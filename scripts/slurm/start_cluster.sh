#!/usr/bin/env bash
# Start a real one-node Slurm cluster on localhost, for tests and CI.
#
#   scripts/slurm/start_cluster.sh          # installs Slurm if needed, starts it
#   eval "$(scripts/slurm/start_cluster.sh --print-env)"   # ... and exports SLURM_CONF
#   scripts/slurm/stop_cluster.sh           # stops what this script started
#
# Idempotent: daemons that already run (pid file + live process) are left alone.
#
# What it does
#   * installs Debian 12's slurmctld, slurmd, slurm-client and munge with apt-get
#     when a binary is missing (needs root and a package mirror);
#   * writes slurm.conf and gres.conf into the state directory
#     $GENBENCH_SLURM_DIR (default /tmp/genbench-slurm). Nothing is written
#     under /etc: every Slurm command finds the configuration through the
#     SLURM_CONF environment variable (gres.conf is read from the directory of
#     slurm.conf). The only system paths touched are munge's own: the Debian
#     package's key /etc/munge/munge.key (created with mungekey if missing) and
#     munged's socket directory /run/munge;
#   * starts munged (as the munge user), slurmctld and slurmd, all with pid files
#     in the state directory, and waits until the node is idle.
#
# The node ("localhost", 127.0.0.1) declares two fake GPUs (gres gpu:fake:2 backed
# by /dev/tty0 and /dev/tty1) so that rules with `resources: gpu=1` can be
# scheduled; such jobs see CUDA_VISIBLE_DEVICES but there is no real GPU.
#
# Environment knobs
#   GENBENCH_SLURM_DIR          state directory (default /tmp/genbench-slurm)
#   GENBENCH_SLURM_MEM_MB       RealMemory of the node (default: 90% of `slurmd -C`)
#   GENBENCH_SLURM_CTLD_PORT    slurmctld port (default 6817)
#   GENBENCH_SLURM_SLURMD_PORT  slurmd port (default 6818)
#   GENBENCH_SLURM_WAIT         seconds to wait for the node to become idle (default 60)
#
# Must run as root (SlurmUser=root; slurmd must be able to start jobs).
set -euo pipefail

PRINT_ENV=0
for arg in "$@"; do
    case "$arg" in
        --print-env) PRINT_ENV=1 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "start_cluster.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

# With --print-env, stdout carries only the export line (for eval); everything
# else goes to stderr.
if [ "$PRINT_ENV" = 1 ]; then exec 3>&1 1>&2; else exec 3>&1; fi

STATE="${GENBENCH_SLURM_DIR:-/tmp/genbench-slurm}"
CTLD_PORT="${GENBENCH_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${GENBENCH_SLURM_SLURMD_PORT:-6818}"
WAIT_S="${GENBENCH_SLURM_WAIT:-60}"
CONF="$STATE/slurm.conf"
export SLURM_CONF="$CONF"

log() { echo "[start_cluster] $*"; }
die() {
    echo "[start_cluster] ERROR: $*" >&2
    for f in "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" "$STATE/log/munged.log"; do
        if [ -f "$f" ]; then
            echo "----- last lines of $f -----" >&2
            tail -n 30 "$f" >&2 || true
        fi
    done
    exit 1
}

if [ "$(id -u)" != 0 ]; then
    die "must run as root (installs packages, runs slurmd with SlurmUser=root)"
fi

# launch a daemon detached from our stdio: a daemon holding the caller's stdout
# (fd 1, or fd 3 with --print-env) open would make `$(start_cluster.sh ...)` wait
# forever
daemon() {
    "$@" </dev/null >>"$STATE/log/daemon-stdio.log" 2>&1 3>&-
}

# pid_alive FILE: true if FILE names a live process
pid_alive() {
    [ -s "$1" ] || return 1
    local pid
    pid="$(tr -dc '0-9' < "$1")"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
        && ! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

# ---------------------------------------------------------------- install
need_install=0
for bin in slurmctld slurmd sinfo sbatch squeue munged mungekey; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
        need_install=1
    fi
done
if [ "$need_install" = 1 ]; then
    log "installing slurmctld slurmd slurm-client munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    APT=(apt-get -y -q -o DPkg::Lock::Timeout=300)
    if ! apt-cache show slurmctld >/dev/null 2>&1 \
        || ! "${APT[@]}" install --no-install-recommends slurmctld slurmd slurm-client munge; then
        "${APT[@]}" update
        "${APT[@]}" install --no-install-recommends slurmctld slurmd slurm-client munge \
            || die "apt-get install failed"
    fi
fi
export PATH="$PATH:/usr/sbin:/sbin"

# ---------------------------------------------------------------- state dir
mkdir -p "$STATE/log" "$STATE/ctld" "$STATE/spool"
chmod 755 "$STATE"

# ---------------------------------------------------------------- munge
# The Debian package creates /etc/munge/munge.key; make one if it is missing.
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null 2>&1; then
        mungekey --create --keyfile=/etc/munge/munge.key --force
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
fi
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge
mkdir -p "$STATE/munge"
chown munge:munge "$STATE/munge"

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

if pid_alive "$STATE/munge/munged.pid"; then
    log "munged already running (pid $(cat "$STATE/munge/munged.pid"))"
elif munge_works; then
    # a munged we did not start (e.g. the system's) already serves the default
    # socket: use it, and leave it alone on stop.
    log "using an already running munged (not started by this script)"
else
    log "starting munged"
    daemon runuser -u munge -- munged --pid-file="$STATE/munge/munged.pid" \
        --log-file="$STATE/munge/munged.log" --force \
        || die "munged failed to start"
    for _ in $(seq 1 50); do munge_works && break; sleep 0.1; done
    munge_works || die "munged started but munge -n | unmunge fails"
fi
ln -sf "$STATE/munge/munged.log" "$STATE/log/munged.log" 2>/dev/null || true

# ---------------------------------------------------------------- slurm.conf
# Hardware as slurmd sees it; the node is always called localhost.
hw="$(slurmd -C 2>/dev/null | head -n 1)" || true
field() { echo "$hw" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n 1; }
CPUS="$(field CPUs)"; CPUS="${CPUS:-$(nproc)}"
SOCKETS="$(field SocketsPerBoard)"; SOCKETS="${SOCKETS:-1}"
CORES="$(field CoresPerSocket)"; CORES="${CORES:-$CPUS}"
THREADS="$(field ThreadsPerCore)"; THREADS="${THREADS:-1}"
MEM_REPORTED="$(field RealMemory)"
if [ -z "$MEM_REPORTED" ]; then
    MEM_REPORTED="$(awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo)"
fi
MEM="${GENBENCH_SLURM_MEM_MB:-$(( MEM_REPORTED * 9 / 10 ))}"
if [ "$MEM" -gt "$MEM_REPORTED" ]; then MEM="$MEM_REPORTED"; fi
# Without DefMemPerCPU a job that asks for no memory takes the whole node.
DEF_MEM_PER_CPU=$(( MEM / CPUS / 2 ))
if [ "$DEF_MEM_PER_CPU" -gt 2048 ]; then DEF_MEM_PER_CPU=2048; fi

if [ -e /dev/tty0 ] && [ -e /dev/tty1 ]; then
    GPU_FILES=("/dev/tty0" "/dev/tty1")
else
    GPU_FILES=("/dev/null" "/dev/zero")
fi

new_conf="$STATE/slurm.conf.new"
cat > "$new_conf" <<EOF
# Written by scripts/slurm/start_cluster.sh - a one-node test cluster on localhost.
ClusterName=genbench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no systemd, no cgroups in containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$DEF_MEM_PER_CPU
# Finished jobs stay visible to squeue for 10 minutes: snakemake's slurm
# executor reads job states from squeue (see profiles/slurm-ci/config.yaml).
MinJobAge=600
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
MessageTimeout=10
SchedulerParameters=batch_sched_delay=1,sched_min_interval=100000
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS SocketsPerBoard=$SOCKETS CoresPerSocket=$CORES ThreadsPerCore=$THREADS RealMemory=$MEM Gres=gpu:fake:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF

cat > "$STATE/gres.conf.new" <<EOF
# Written by scripts/slurm/start_cluster.sh - fake GPUs for scheduling tests.
AutoDetect=off
NodeName=localhost Name=gpu Type=fake File=${GPU_FILES[0]}
NodeName=localhost Name=gpu Type=fake File=${GPU_FILES[1]}
EOF

conf_changed=0
for f in slurm.conf gres.conf; do
    if ! cmp -s "$STATE/$f.new" "$STATE/$f" 2>/dev/null; then
        mv "$STATE/$f.new" "$STATE/$f"
        conf_changed=1
    else
        rm -f "$STATE/$f.new"
    fi
done
chmod 644 "$STATE/slurm.conf" "$STATE/gres.conf"

# Inside a job, snakemake's slurm-jobstep executor (0.6.1) runs each rule with a
# nested `srun` after removing every SLURM_* variable but the job ids from the
# environment - SLURM_CONF included. That srun then looks for the configuration
# at the compiled-in places: /etc/slurm/slurm.conf, then /run/slurm/conf/
# slurm.conf (where slurmd keeps its configuration in "configless" mode), then a
# DNS SRV record; without one the job fails with "Could not establish a
# configuration source". So Slurm truly needs a system path here: we link the
# runtime directory /run/slurm/conf to the state directory (tmpfs, nothing under
# /etc is written; stop_cluster.sh removes the link). A real
# /etc/slurm/slurm.conf would win over it and send those nested sruns to another
# cluster, so that case is refused.
if [ -e /etc/slurm/slurm.conf ] && ! [ /etc/slurm/slurm.conf -ef "$CONF" ]; then
    die "/etc/slurm/slurm.conf exists (another Slurm cluster is configured on this machine); jobs would not find this test cluster"
fi
mkdir -p /run/slurm
if [ -L /run/slurm/conf ]; then
    other="$(readlink /run/slurm/conf)"
    if [ "$other" != "$STATE" ] && pid_alive "$other/slurmctld.pid"; then
        die "another test cluster runs from $other; stop it first (GENBENCH_SLURM_DIR=$other scripts/slurm/stop_cluster.sh)"
    fi
fi
if [ -L /run/slurm/conf ] || [ ! -e /run/slurm/conf ]; then
    ln -sfn "$STATE" /run/slurm/conf
elif ! [ /run/slurm/conf/slurm.conf -ef "$CONF" ]; then
    die "/run/slurm/conf is a real directory (a configless slurmd?); refusing to replace it"
fi

# ---------------------------------------------------------------- daemons
ctld_running=0; slurmd_running=0
pid_alive "$STATE/slurmctld.pid" && ctld_running=1
pid_alive "$STATE/slurmd.pid" && slurmd_running=1

if [ "$conf_changed" = 1 ] && { [ "$ctld_running" = 1 ] || [ "$slurmd_running" = 1 ]; }; then
    log "configuration changed: restarting the Slurm daemons"
    GENBENCH_SLURM_KEEP_MUNGE=1 "$(dirname "$0")/stop_cluster.sh"
    ctld_running=0; slurmd_running=0
fi

if [ "$ctld_running" = 1 ]; then
    log "slurmctld already running (pid $(cat "$STATE/slurmctld.pid"))"
else
    log "starting slurmctld"
    # -i: ignore state files from an older, incompatible run
    daemon slurmctld -i -f "$CONF" || die "slurmctld failed to start"
fi
# wait until the controller answers before starting slurmd
for _ in $(seq 1 $(( WAIT_S * 5 ))); do
    scontrol ping 2>/dev/null | grep -q "is UP" && break
    sleep 0.2
done
scontrol ping 2>/dev/null | grep -q "is UP" || die "slurmctld does not answer (scontrol ping)"

if [ "$slurmd_running" = 1 ]; then
    log "slurmd already running (pid $(cat "$STATE/slurmd.pid"))"
else
    log "starting slurmd"
    daemon slurmd -N localhost -f "$CONF" || die "slurmd failed to start"
fi

# ---------------------------------------------------------------- wait for idle
state=""
deadline=$(( $(date +%s) + WAIT_S ))
while [ "$(date +%s)" -lt "$deadline" ]; do
    state="$(sinfo -h -n localhost -o %T 2>/dev/null | head -n 1 || true)"
    case "$state" in
        idle|mixed|allocated|completing) break ;;
        *down*|*drain*)
            # a node left DOWN by an earlier run: bring it back
            scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated|completing) ;;
    *) die "node localhost is not idle after ${WAIT_S}s (state: '${state:-none}')" ;;
esac

log "cluster up: node localhost is $state ($CPUS CPUs, ${MEM} MB, gpu:fake:2)"
log "state directory: $STATE"
if [ "$PRINT_ENV" = 1 ]; then
    echo "export SLURM_CONF=$CONF" >&3
else
    log "run this in your shell:"
    echo "export SLURM_CONF=$CONF" >&3
fi
