#!/usr/bin/env bash
# Stop the one-node Slurm cluster started by scripts/slurm/start_cluster.sh.
#
# Stops only the daemons named by the pid files in $GENBENCH_SLURM_DIR
# (default /tmp/genbench-slurm): slurmd, slurmctld and munged (the latter only if
# start_cluster.sh started it). SIGTERM first, SIGKILL after a bounded wait.
# Idempotent: missing pid files or dead processes are fine.
#
#   --purge   also delete the state directory (configuration, logs, job state)
#
# GENBENCH_SLURM_KEEP_MUNGE=1 leaves munged and the /run/slurm/conf link alone
# (start_cluster.sh uses it to restart slurmctld and slurmd on a config change).
set -uo pipefail

STATE="${GENBENCH_SLURM_DIR:-/tmp/genbench-slurm}"
PURGE=0
for arg in "$@"; do
    case "$arg" in
        --purge) PURGE=1 ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "stop_cluster.sh: unknown argument: $arg" >&2; exit 2 ;;
    esac
done
export PATH="$PATH:/usr/sbin:/sbin"

log() { echo "[stop_cluster] $*"; }

read_pid() {
    [ -s "$1" ] || return 1
    local pid
    pid="$(tr -dc '0-9' < "$1")"
    [ -n "$pid" ] || return 1
    echo "$pid"
}

# alive PID: the process exists and is not a zombie (a daemon that has exited
# stays a zombie until PID 1 reaps it, which some container inits do late)
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null
}

# stop_pid NAME PIDFILE
stop_pid() {
    local name="$1" file="$2" pid
    if ! pid="$(read_pid "$file")"; then
        log "$name: no pid file"
        return 0
    fi
    if ! alive "$pid"; then
        log "$name: not running (stale pid $pid)"
        rm -f "$file"
        return 0
    fi
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        alive "$pid" || break
        sleep 0.2
    done
    if alive "$pid"; then
        log "$name: still alive after 10 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        sleep 0.2
    fi
    rm -f "$file"
}

if [ -f "$STATE/slurm.conf" ] && [ -s "$STATE/slurmctld.pid" ]; then
    # cancel what is still queued or running on our cluster, so no job step
    # outlives the daemons (bounded: scancel gives up after MessageTimeout)
    SLURM_CONF="$STATE/slurm.conf" timeout 15 scancel --full --quiet \
        --user "$(id -un)" >/dev/null 2>&1 || true
fi

stop_pid slurmd "$STATE/slurmd.pid"
stop_pid slurmctld "$STATE/slurmctld.pid"
if [ "${GENBENCH_SLURM_KEEP_MUNGE:-0}" != 1 ]; then
    stop_pid munged "$STATE/munge/munged.pid"
fi

# the link start_cluster.sh made for job steps (see there), if it is ours
if [ -L /run/slurm/conf ] && [ "$(readlink /run/slurm/conf)" = "$STATE" ] \
    && [ "${GENBENCH_SLURM_KEEP_MUNGE:-0}" != 1 ]; then
    rm -f /run/slurm/conf
    log "removed the link /run/slurm/conf"
fi

if [ "$PURGE" = 1 ]; then
    case "$STATE" in
        /|"") log "refusing to purge '$STATE'" ;;
        *) rm -rf "$STATE"; log "removed $STATE" ;;
    esac
fi
exit 0
