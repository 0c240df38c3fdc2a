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

# Shared by the scenarios that change a running system (safety.sh, rotate.sh).
# show NAME: what a run kept as $OUT/NAME.stdout and $OUT/NAME.stderr printed.
show() {
    echo "---- $1: stdout ----"; head -c 20000 "$OUT/$1.stdout"; echo
    echo "---- $1: stderr ----"; tail -n 100 "$OUT/$1.stderr"
}
# send_mail smtp|sendmail MARKER
send_mail() {
    python3 "$E2E/sender.py" --domain "$DOMAIN" --rcpt "$RCPT" once "$1" "$2" \
        || die "submitting $2 through $1 failed"
}
# verify ARG...: verify.py on the recipient's mbox (selector $SELECTOR unless
# ARG gives --selector).
verify() {
    local -a sel=(--selector "$SELECTOR")
    [[ " $* " == *" --selector "* || " $* " == *" --expect-switch "* ]] && sel=()
    python3 "$E2E/verify.py" --mbox "/var/mail/$RCPT" --domain "$DOMAIN" "${sel[@]}" "$@"
}
# snapshot NAME [DIR...]: every entry under the DIRs (default /etc): path,
# type, mode, uid, gid, sha256.
snapshot() {
    local name=$1
    shift
    python3 "$E2E/snapshot.py" "${@:-/etc}" >"$OUT/etc-$name.txt"
}
# same_etc A B: the snapshots are identical, or die showing the difference.
same_etc() {
    diff -u "$OUT/etc-$1.txt" "$OUT/etc-$2.txt" >"$OUT/etc-$1-vs-$2.diff" \
        || { cat "$OUT/etc-$1-vs-$2.diff"; die "/etc differs between '$1' and '$2' (diff above)"; }
}

# A transcript of what was run, for a note to quote: when TRANSCRIPT names a
# file, tx appends to it each command line as typed and what it printed.
TRANSCRIPT=${TRANSCRIPT:-}
# tx NAME WANT 'COMMAND LINE': runs the command line as typed (eval'd here,
# so VAR=value prefixes and redirections work), keeps what it printed in
# $OUT/NAME.stdout and $OUT/NAME.stderr, its exit status in TX_RC and its time
# in T_RUN (seconds, two decimals), and dies unless it exits WANT ("any"
# accepts every status).
tx() {
    local name=$1 want=$2 line=$3 t0=${EPOCHREALTIME/./} us
    TX_RC=0
    eval "$line" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" || TX_RC=$?
    us=$((${EPOCHREALTIME/./} - t0))
    T_RUN=$(printf '%d.%02d' $((us / 1000000)) $((us % 1000000 / 10000)))
    if [[ -n $TRANSCRIPT ]]; then
        {
            echo "\$ $line"
            if [[ -s $OUT/$name.stdout ]]; then
                echo "--- stdout"; cat "$OUT/$name.stdout"
                [[ -z $(tail -c 1 "$OUT/$name.stdout") ]] || echo
            fi
            if [[ -s $OUT/$name.stderr ]]; then
                echo "--- stderr"; cat "$OUT/$name.stderr"
                [[ -z $(tail -c 1 "$OUT/$name.stderr") ]] || echo
            fi
            echo "--- exit $TX_RC ($T_RUN s)"
            echo
        } >>"$TRANSCRIPT"
    fi
    [[ $want == any ]] || ((TX_RC == want)) \
        || { show "$name"; die "'$line' exited $TX_RC, expected $want"; }
}
# note TEXT: a comment line in the transcript (what the next commands do).
note() {
    log "$*"
    [[ -z $TRANSCRIPT ]] || printf '# %s\n\n' "$*" >>"$TRANSCRIPT"
}
