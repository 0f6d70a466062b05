# Sourced by bench/slowloris.sh and bench/tls_flood.sh: runs the attacker in
# a CPU-limited cgroup, so that on a machine shared with the attacker its own
# CPU is not what the defended clients lose (the figures assume the
# attacker on other machines). ATTACKER_CPU is a share of one core (0.25 =
# 25 ms every 100 ms, CFS quota); empty means no limit (the attacker competes
# for the same cores as wrk, the backend and the server).
#
#   attacker_cgroup_init        creates the cgroup (cgroup v1 cpu or v2)
#   attacker_run CMD ARGS...    runs CMD in it (in the background: use $!)
#   attacker_cgroup_fini        removes it (its processes must have ended)
ATTACKER_CPU=${ATTACKER_CPU:-}
ATTACKER_CG=

attacker_cgroup_init() {
    [[ -n $ATTACKER_CPU ]] || return 0
    local quota
    quota=$(awk -v c="$ATTACKER_CPU" 'BEGIN {printf "%d", c * 100000}')
    if [[ -d /sys/fs/cgroup/cpu && -w /sys/fs/cgroup/cpu ]]; then
        ATTACKER_CG=/sys/fs/cgroup/cpu/arc-bench-attacker-$$
        mkdir "$ATTACKER_CG"
        echo 100000 >"$ATTACKER_CG/cpu.cfs_period_us"
        echo "$quota" >"$ATTACKER_CG/cpu.cfs_quota_us"
    elif [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
        ATTACKER_CG=/sys/fs/cgroup/arc-bench-attacker-$$
        mkdir "$ATTACKER_CG"
        echo "$quota 100000" >"$ATTACKER_CG/cpu.max"
    else
        echo "ATTACKER_CPU set but no writable cpu cgroup" >&2
        exit 1
    fi
    echo "attacker limited to $ATTACKER_CPU of a core ($ATTACKER_CG)"
}

attacker_run() {
    if [[ -n $ATTACKER_CG ]]; then
        CG="$ATTACKER_CG" bash -c 'echo $$ >"$CG/cgroup.procs" && exec "$@"' attacker "$@" &
    else
        "$@" &
    fi
}

attacker_cgroup_fini() {
    [[ -n $ATTACKER_CG ]] || return 0
    rmdir "$ATTACKER_CG" 2>/dev/null || true
}
