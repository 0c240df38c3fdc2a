#!/bin/bash
# The minimal /dev the test system gets (P20: never bind the host's /dev, or a
# chroot rsyslogd would replace the host's /dev/log). $1 = the tree's /dev,
# which must already be a fresh tmpfs in a private mount namespace. Sourced by
# build-tree.sh and run.sh.
populate_dev() {
    local dev=$1
    mknod -m 666 "$dev/null" c 1 3
    mknod -m 666 "$dev/zero" c 1 5
    mknod -m 666 "$dev/full" c 1 7
    mknod -m 666 "$dev/random" c 1 8
    mknod -m 666 "$dev/urandom" c 1 9
    mknod -m 666 "$dev/tty" c 5 0
    ln -s /proc/self/fd "$dev/fd"
    ln -s /proc/self/fd/0 "$dev/stdin"
    ln -s /proc/self/fd/1 "$dev/stdout"
    ln -s /proc/self/fd/2 "$dev/stderr"
}
