#!/bin/bash
# shellcheck disable=SC2034  # the names are used by the scripts that source this file
# Shared by the scenarios that run inside the throwaway test system (sourced
# by inside.sh and interactive.sh): names, helpers, and starting syslog and
# Postfix the way the real machines need (platform notes: no /dev/log, no
# systemd, rsyslog without an init script).
E2E=${E2E_DIR:-/root/e2e}
OUT=$E2E/out
DKIM_SETUP=/usr/local/sbin/dkim-setup
DOMAIN=example.test
SELECTOR=key
RCPT=e2e                # local user whose mbox is /var/mail/e2e
WIZARD=(wizard --non-interactive --domain "$DOMAIN" --json)
mkdir -p "$OUT"

log() { echo "inside: $*" >&2; }
die() {
    echo "inside: FAILED: $*"
    diagnostics >&2 || true
    exit 1
}
# Enough context to see why a step failed without re-running by hand.
diagnostics() {
    echo "---- diagnostics ----"
    echo "-- processes:"; ps -eo pid,args 2>/dev/null || true
    echo "-- postqueue -p:"; postqueue -p 2>&1 | tail -20 || true
    echo "-- /etc/opendkim.conf (active lines):"
    grep -Ev '^\s*(#|$)' /etc/opendkim.conf 2>/dev/null || echo "(none)"
    echo "-- postconf milters:"; postconf -n 2>/dev/null | grep -i milter || echo "(none)"
    echo "-- /var/log/mail.log (tail):"; tail -40 /var/log/mail.log 2>/dev/null || true
    echo "---- end diagnostics ----"
}
# Show what a dkim-setup run printed: $1 = wizard1 | dns | wizard2.
show_run() {
    local f=$OUT/$1.json
    echo "---- $1: stdout ($f) ----"; head -c 20000 "$f"; echo
    echo "---- $1: stderr ----"; tail -n 100 "$OUT/$1.stderr"
}
# Poll a condition (a shell command) for at most $1 seconds.
wait_for() {
    local secs=$1; shift
    local end=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < end)) || return 1
        sleep 0.2
    done
}
port_open() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1).close()"; }
# Pids of running opendkim processes (the pid namespace holds only ours).
opendkim_pids() {
    local p
    for p in /proc/[0-9]*; do
        if [[ $(cat "$p/comm" 2>/dev/null) == opendkim ]]; then echo "${p#/proc/}"; fi
    done | sort -n | paste -sd ' '
}
count_log() { grep -cE "$1" /var/log/mail.log 2>/dev/null || true; }

# Start rsyslogd (opendkim logs only to syslog) and Postfix, and create the
# local recipient.
start_services() {
    # Debian 12's rsyslog has no init script. Our own small config: only imuxsock
    # (/dev/log). The stock config also loads imklog, which would read the host
    # kernel's /proc/kmsg; a test must not take the host's kernel log.
    cat >/run/e2e-rsyslog.conf <<'EOF'
module(load="imuxsock")
mail.*                          /var/log/mail.log
*.*;auth,authpriv.none          /var/log/syslog
EOF
    rsyslogd -f /run/e2e-rsyslog.conf -i /run/e2e-rsyslogd.pid
    wait_for 10 test -S /dev/log || die "rsyslogd did not create /dev/log"

    useradd --no-create-home --shell /usr/sbin/nologin "$RCPT"
    service postfix start >&2 || die "service postfix start failed"
    wait_for 20 port_open 25 || die "Postfix does not listen on 127.0.0.1:25"
    log "rsyslogd and postfix up ($((SECONDS - T_START)) s)"
}
