#!/usr/bin/env bash
# One end-to-end run of dkim-setup on a throwaway Debian 12 system.
#
#   usage: tests/e2e/run.sh /path/to/dkim-setup
#
# - build-tree.sh provides the cached bookworm tree (postfix "Local only",
#   rsyslog, python3-dkim; opendkim only downloaded).
# - This script re-executes itself in new mount, network, pid, uts and ipc
#   namespaces (`unshare --fork`). There it lays a copy-on-write overlay over
#   the tree (fallback: a full copy), gives it its own /proc and a tiny tmpfs
#   /dev (P20: never the host's /dev), brings up loopback, and chroots into it
#   to run inside.sh with the binary copied in.
# - The host's /etc, ports and processes are never touched: every daemon lives
#   in the pid namespace and dies with it, every mount vanishes with the mount
#   namespace, and the only network is the namespace's own loopback.
#
# Artifacts (wizard JSON, dns.json, mail.log, the mbox) are kept in
# $E2E_ARTIFACTS (default <cache>/last-run); the overlay's upper dir is removed.
# Exit status: 0 on success; the last stdout line is the summary.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${E2E_CACHE_DIR:-$REPO/target/e2e}
# Bounds, so a hang fails the test instead of blocking it forever.
INSIDE_TIMEOUT=${E2E_INSIDE_TIMEOUT:-300}
# Which script runs inside: inside.sh (the unattended run, the default),
# interactive.sh (the wizard at a terminal), check.sh, safety.sh or
# package.sh (which needs E2E_INPUTS, see below).
SCENARIO=${E2E_SCENARIO:-inside}
export SCENARIO
# A script that needs several fresh systems lists its parts in a line
# "# e2e-parts: NAME..." (safety.sh does); each part then runs in its own
# namespaces on its own overlay, in that order, with E2E_PART=NAME. Setting
# E2E_PART runs only that part.

log() { echo "run: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=tests/e2e/dev.sh
source "$HERE/dev.sh"

# ---------------------------------------------------------------------------
# In the namespaces (we are pid 1 of the new pid namespace).
# ---------------------------------------------------------------------------
in_namespace() {
    local tree=$1 work=$2 bin=$3 artifacts=$4 part=${5:-}
    local root=$work/root

    # No mount event may reach the host (unshare defaults to this; be explicit).
    mount --make-rprivate /

    mkdir -p "$work/upper" "$work/ovl-work" "$root"
    # E2E_NO_OVERLAY=1 forces the copy (to test that path).
    if [[ -z ${E2E_NO_OVERLAY:-} ]] && mount -t overlay overlay \
        -o "lowerdir=$tree,upperdir=$work/upper,workdir=$work/ovl-work" "$root" 2>/dev/null; then
        log "overlay over the cached tree"
    else
        log "no overlay (unavailable, or E2E_NO_OVERLAY set); copying the tree (slower)"
        cp -a "$tree/." "$root/"
    fi

    mount -t proc proc "$root/proc"          # this pid namespace's /proc
    mount -t tmpfs -o mode=755,nosuid dev "$root/dev"
    populate_dev "$root/dev"
    # A private devpts instance, so the interactive scenario can open a
    # pseudo-terminal without touching the host's /dev/pts.
    mkdir -p "$root/dev/pts"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
    ln -sf pts/ptmx "$root/dev/ptmx"
    # POSIX shared memory, as on a booted system (Python's multiprocessing
    # locks, which ansible uses, need it).
    mkdir -p "$root/dev/shm"
    mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
    # Fresh /run and /tmp like a booted system (no stale pid files, P20).
    mount -t tmpfs -o mode=755,nosuid,nodev run "$root/run"
    mkdir -p "$root/run/lock" && chmod 1777 "$root/run/lock"
    mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"

    ip link set lo up
    hostname mail.example.test

    install -m 0755 "$bin" "$root/usr/local/sbin/dkim-setup"
    mkdir -p "$root/root/e2e"
    install -m 0755 "$HERE"/*.sh "$HERE"/*.py "$root/root/e2e/"
    # Files a scenario needs from the host (the package scenario: the .deb
    # and the docs' playbook and cloud-init example), ':'-separated.
    if [[ -n ${E2E_INPUTS:-} ]]; then
        local input inputs
        mkdir -p "$root/root/e2e/inputs"
        IFS=: read -ra inputs <<<"$E2E_INPUTS"
        for input in "${inputs[@]}"; do
            cp -a -- "$input" "$root/root/e2e/inputs/"
        done
    fi

    local rc=0
    timeout --kill-after=10 "$INSIDE_TIMEOUT" \
        chroot "$root" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LANG=C.UTF-8 TERM=dumb E2E_PART="$part" \
        /bin/bash "/root/e2e/$SCENARIO.sh" </dev/null || rc=$?
    ((rc == 124)) && log "$SCENARIO.sh ${part:+(part $part) }timed out after ${INSIDE_TIMEOUT} s"

    # Keep what is needed to understand a failure.
    mkdir -p "$artifacts"
    cp -a "$root/root/e2e/out/." "$artifacts/" 2>/dev/null || true
    local f
    for f in var/log/mail.log var/log/syslog etc/opendkim.conf etc/postfix/main.cf \
        etc/opendkim/KeyTable etc/opendkim/SigningTable etc/opendkim/TrustedHosts \
        etc/default/opendkim; do
        [[ -e $root/$f ]] && cp "$root/$f" "$artifacts/$(echo "$f" | tr / _)"
    done
    cp -a "$root/var/mail/." "$artifacts/mail/" 2>/dev/null || true
    return "$rc"
    # Returning ends pid 1: the kernel kills every daemon in the namespace, and
    # the mounts go with the mount namespace.
}

if [[ ${1:-} == --in-namespace ]]; then
    shift
    in_namespace "$@"
    exit $?
fi

# ---------------------------------------------------------------------------
# On the host.
# ---------------------------------------------------------------------------
[[ $# -eq 1 ]] || { echo "usage: $0 /path/to/dkim-setup" >&2; exit 2; }
bin=$(readlink -f "$1")
[[ -x $bin ]] || die "not an executable: $1"
[[ $(id -u) == 0 ]] || die "must run as root (namespaces, mounts, chroot)"
for cmd in unshare chroot ip mknod timeout; do
    command -v "$cmd" >/dev/null || die "missing command: $cmd"
done

start=$SECONDS
tree=$("$HERE/build-tree.sh") || die "could not build the test tree"
t_tree=$((SECONDS - start))

[[ -f $HERE/$SCENARIO.sh ]] || die "no scenario script $HERE/$SCENARIO.sh"
read -ra parts <<<"$(sed -n 's/^# e2e-parts: *//p' "$HERE/$SCENARIO.sh" | head -n 1)"
if [[ -n ${E2E_PART:-} ]]; then
    [[ " ${parts[*]} " == *" $E2E_PART "* ]] || die "$SCENARIO.sh has no part '$E2E_PART' (parts: ${parts[*]:-none})"
    parts=("$E2E_PART")
fi
((${#parts[@]})) || parts=("")

mkdir -p "$CACHE/runs"
artifacts=${E2E_ARTIFACTS:-$CACHE/last-run-$SCENARIO}
rm -rf "$artifacts"
work=
cleanup() {
    # The namespace is gone by now, so nothing is mounted under $work; check
    # anyway before deleting (rm -rf through a live mount would hit the tree).
    [[ -n $work ]] || return 0
    if grep -qF " $work/" /proc/self/mountinfo; then
        log "WARNING: something still mounted under $work; not deleting it"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

t0=$SECONDS
times=()
for part in "${parts[@]}"; do
    work=$(mktemp -d "$CACHE/runs/run.XXXXXX")   # same filesystem as the tree
    log "running $bin in fresh namespaces${part:+ (part $part)}"
    t_part=$SECONDS
    rc=0
    unshare --mount --net --pid --uts --ipc --fork --kill-child \
        bash "$SELF" --in-namespace "$tree" "$work" "$bin" "$artifacts${part:+/$part}" "$part" \
        || rc=$?
    times+=("${part:+$part }$((SECONDS - t_part)) s")
    log "namespaced run${part:+ (part $part)}: $((SECONDS - t_part)) s (tree: ${t_tree} s), artifacts in $artifacts${part:+/$part}"
    cleanup
    work=
    if ((rc != 0)); then
        log "FAILED${part:+ in part $part} (exit $rc)"
        exit "$rc"
    fi
done
if [[ -n ${parts[0]} ]]; then
    detail=$(printf ', %s' "${times[@]}")
    echo "e2e: wall time $((SECONDS - start)) s (tree ${t_tree} s, run $((SECONDS - t0)) s: ${detail#, })"
else
    echo "e2e: wall time $((SECONDS - start)) s (tree ${t_tree} s, run $((SECONDS - t0)) s)"
fi
