#!/usr/bin/env bash
# Build, once, the Debian 12 (bookworm) tree that the end-to-end test runs in,
# and print its path on stdout (everything else goes to stderr).
#
# The tree is what a freshly provisioned "Local only" Postfix server looks like,
# plus what the test itself needs (rsyslog, python3-dkim; ansible-core,
# python3-apt for its apt module, and python3-yaml for the package scenario):
#   debootstrap --variant=minbase bookworm, then in a chroot:
#   postfix (debconf: "Local only", mailname mail.example.test), rsyslog,
#   python3, python3-dkim, procps, ansible-core, python3-apt, python3-yaml.
# opendkim is NOT installed: dkim-setup installs it itself. The test runs with no
# network (unshare --net), so opendkim + opendkim-tools are only downloaded into
# the tree's apt cache here, and the apt lists are kept, so that an offline
# `apt-get install -y opendkim opendkim-tools` inside the test succeeds.
#
# Cache: <cache>/tree, with the sha256 of this script in <cache>/tree/.e2e-stamp.
# The tree is rebuilt when it is missing or when this script changed.
# <cache> is $E2E_CACHE_DIR, default <repo>/target/e2e (target/ is gitignored).
#
# Needs root, debootstrap, unshare (util-linux) and network access to Debian's
# package mirror (debootstrap's default one; no mirror is named here).
#
# Changes to the tree beyond the package installs (all for the test environment):
#   - /usr/sbin/policy-rc.d exiting 101, as on the real machines: package
#     installs start no daemon (so the test starts them, like an admin would).
#   - /etc/hostname, /etc/hosts: the host is mail.example.test (Postfix's
#     postinst derives myhostname from it, so mydomain = example.test).
#   - /etc/resolv.conf: "nameserver 127.0.0.1". debootstrap copies the build
#     host's resolver in (needed for the downloads here); the test runs in its own
#     network namespace, where only loopback exists, so lookups fail at once
#     instead of ever aiming at a non-loopback address.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SELF="$HERE/$(basename "${BASH_SOURCE[0]}")"
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${E2E_CACHE_DIR:-$REPO/target/e2e}
TREE=$CACHE/tree
SUITE=bookworm
HOSTNAME_FQDN=mail.example.test

log() { echo "build-tree: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# shellcheck source=tests/e2e/dev.sh
source "$HERE/dev.sh"

# ---------------------------------------------------------------------------
# Stage 2: runs inside `unshare --mount --uts --pid --fork` (see the bottom).
# Mounts made here vanish with the namespace, even if we are killed, and the
# pid namespace kills anything a postinst might leave running.
# ---------------------------------------------------------------------------
stage2() {
    local new=$1
    hostname "$HOSTNAME_FQDN"

    log "debootstrap --variant=minbase $SUITE (default mirror) ..."
    local t0=$SECONDS
    timeout 1200 debootstrap --variant=minbase "$SUITE" "$new" >&2 \
        || die "debootstrap failed (see above)"
    log "debootstrap done in $((SECONDS - t0)) s"

    # As on the real machines: package installs must not start daemons.
    printf '#!/bin/sh\n# e2e tree: like the real machines, start nothing on install.\nexit 101\n' \
        >"$new/usr/sbin/policy-rc.d"
    chmod 755 "$new/usr/sbin/policy-rc.d"

    echo "$HOSTNAME_FQDN" >"$new/etc/hostname"
    cat >"$new/etc/hosts" <<EOF
127.0.0.1	localhost
127.0.1.1	$HOSTNAME_FQDN mail
::1	localhost ip6-localhost ip6-loopback
EOF

    mount -t proc proc "$new/proc"
    mount -t tmpfs -o mode=755,nosuid dev "$new/dev"
    populate_dev "$new/dev"

    # Fixed, clean environment for everything run in the tree.
    local -a in_tree=(chroot "$new" /usr/bin/env -i
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)

    # The debconf answers an admin gives for a local-only mail server.
    "${in_tree[@]}" debconf-set-selections <<EOF
postfix postfix/main_mailer_type select Local only
postfix postfix/mailname string $HOSTNAME_FQDN
EOF

    t0=$SECONDS
    log "apt-get update + install postfix rsyslog python3-dkim ansible-core ..."
    timeout 600 "${in_tree[@]}" apt-get update >&2
    # --no-install-recommends keeps the tree small; the test needs nothing more.
    # procps: a real server has ps/pgrep (opendkim's init script calls ps).
    # ansible-core runs the docs' playbook against the tree itself (connection
    # local); its apt module needs python3-apt on the managed host.
    timeout 900 "${in_tree[@]}" apt-get install -y --no-install-recommends \
        postfix rsyslog python3 python3-dkim procps ansible-core python3-apt python3-yaml >&2
    # Drop the .debs installed so far (debootstrap's and these), ~100 MB; the
    # cache then holds exactly what the offline opendkim install needs.
    "${in_tree[@]}" apt-get clean
    # Pre-download (do not install) what dkim-setup will install offline later.
    # No --no-install-recommends here: same resolution as the tool's own
    # `apt-get install -y opendkim opendkim-tools`.
    timeout 600 "${in_tree[@]}" apt-get install -y --download-only \
        opendkim opendkim-tools >&2
    log "installs done in $((SECONDS - t0)) s"

    # Sanity: the things the test relies on are in place.
    "${in_tree[@]}" sh -c 'command -v postfix rsyslogd python3 sendmail >/dev/null' \
        || die "postfix/rsyslog/python3 missing after install"
    "${in_tree[@]}" python3 -c 'import dkim' || die "python3-dkim not importable"
    "${in_tree[@]}" ansible-playbook --version >/dev/null || die "ansible-playbook does not run"
    "${in_tree[@]}" python3 -c 'import apt, yaml' || die "python3-apt or python3-yaml not importable"
    if "${in_tree[@]}" dpkg -s opendkim >/dev/null 2>&1; then
        die "opendkim got installed; it must only be downloaded"
    fi
    ls "$new"/var/cache/apt/archives/opendkim_*.deb >/dev/null 2>&1 \
        || die "opendkim .deb not in the apt cache"
    # Fail now, not in the offline test, if apt cannot install from the cache.
    "${in_tree[@]}" apt-get install -y --no-download -s opendkim opendkim-tools >/dev/null \
        || die "offline install of opendkim would not work"

    echo "nameserver 127.0.0.1" >"$new/etc/resolv.conf"
    # Make sure nothing from the build lingers in the tree.
    rm -f "$new/var/log/apt/"*.log.* 2>/dev/null || true
    umount "$new/dev" "$new/proc"
}

if [[ ${1:-} == --stage2 ]]; then
    stage2 "$2"
    exit 0
fi

# ---------------------------------------------------------------------------
# Stage 1: cache check, then build in a private namespace.
# ---------------------------------------------------------------------------
[[ $(id -u) == 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
for cmd in debootstrap unshare chroot mknod flock sha256sum; do
    command -v "$cmd" >/dev/null || die "missing command: $cmd"
done

mkdir -p "$CACHE"
# One builder at a time (e.g. two `cargo test` runs at once).
exec 9>"$CACHE/.build.lock"
flock 9

want=$(sha256sum "$SELF" | cut -d' ' -f1)
if [[ -f $TREE/.e2e-stamp && $(cat "$TREE/.e2e-stamp") == "$want" ]]; then
    log "using cached tree $TREE"
    echo "$TREE"
    exit 0
fi

# Never rm -rf a directory with something mounted below it.
if grep -qF " $CACHE/" /proc/self/mountinfo; then
    die "something is mounted under $CACHE; refusing to rebuild (see /proc/self/mountinfo)"
fi

log "building tree (stamp ${want:0:12}) in $CACHE ..."
start=$SECONDS
new=$CACHE/tree.new
rm -rf "$new"
unshare --mount --uts --pid --fork --kill-child --mount-proc \
    bash "$SELF" --stage2 "$new" \
    || die "tree build failed"
echo "$want" >"$new/.e2e-stamp"
rm -rf "$TREE"
mv "$new" "$TREE"
log "tree ready in $((SECONDS - start)) s: $TREE"
echo "$TREE"
