#!/bin/bash
# Runs inside the throwaway test system, once per part below, each part on a
# fresh tree (run.sh reads the e2e-parts line). It proves, for real, that
# dkim-setup never leaves a server half-configured or mail unsigned:
#
#   outage   mail submitted every 100 ms (SMTP to 127.0.0.1:25 and sendmail,
#            alternating) from 2 s before to 2 s after a wizard run that adds a
#            domain is all accepted, delivered, signed and verified by dkimpy;
#            opendkim is reloaded (SIGUSR1), not restarted, and keeps its pid.
#   badconf  opendkim installed beforehand, plus a setting of the admin's
#            (not one the tool owns) that passes `opendkim -n` but makes the
#            daemon die at start: the wizard exits 1, says that opendkim did
#            not come up and what it restored, /etc is byte for byte (mode,
#            owner) as before with the admin's line kept, no opendkim is left
#            running, and Postfix still delivers.
#   revert   opendkim installed beforehand and not running: after a good
#            wizard run (mail signed), `dkim-setup revert` puts /etc back byte
#            for byte (mode, owner), stops the opendkim that run started, and
#            Postfix still delivers. After a second good run and a file edited
#            by hand, revert refuses and names the file (exit 1, nothing
#            changed); `revert --force` puts everything back as before.
#
# The last stdout line is the part's summary; artifacts go to $OUT.
# e2e-parts: outage badconf revert
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS
PART=${E2E_PART:-}
ADD_WIZARD=(wizard --non-interactive --domain "$DOMAIN" --domain second.test --json)
# The admin's own setting for part badconf: opendkim -n accepts it (platform
# note P12), `service opendkim start` exits 0 (P10), and the daemon exits at
# once with "can't configure DKIM library: failed to add resolver
# configuration file". dkim-setup does not own ResolverConfiguration.
BAD_SETTING='ResolverConfiguration /etc/unbound/opendkim-resolver.conf'

# run_tool NAME WANT_EXIT ARG...: dkim-setup ARG..., stdout and stderr kept as
# $OUT/NAME.stdout and $OUT/NAME.stderr, its time in $T_RUN; dies unless it
# exits WANT_EXIT.
run_tool() {
    local name=$1 want=$2 rc=0 t=$SECONDS
    shift 2
    "$DKIM_SETUP" "$@" >"$OUT/$name.stdout" 2>"$OUT/$name.stderr" || rc=$?
    T_RUN=$((SECONDS - t))
    ((rc == want)) || { show "$name"; die "dkim-setup $* exited $rc, expected $want"; }
}
# opendkim from the tree's apt cache, as an admin may have installed it
# before running dkim-setup (policy-rc.d keeps it from starting).
install_opendkim() {
    apt-get install -y --no-download opendkim opendkim-tools >"$OUT/apt-install.txt" 2>&1 \
        || { tail -20 "$OUT/apt-install.txt"; die "offline install of opendkim failed"; }
    [[ -z $(opendkim_pids) ]] || die "opendkim runs right after its install"
    log "opendkim installed from the cache, not running"
}
no_opendkim() { [[ -z $(opendkim_pids) ]]; }

# --- outage: add a domain while mail flows -----------------------------------
part_outage() {
    start_services
    run_tool wizard1 0 "${WIZARD[@]}"
    log "wizard run 1 (example.test): ok in ${T_RUN} s"
    "$DKIM_SETUP" dns --format json >"$OUT/dns-before.json"
    send_mail sendmail safety-first-sendmail
    send_mail smtp safety-first-smtp
    verify --dns "$OUT/dns-before.json" --timeout 30 safety-first-sendmail safety-first-smtp \
        || die "mail after the first run is not signed and verified"
    log "first mails signed and verified"

    local pid_before starts_before reloads_before
    pid_before=$(opendkim_pids)
    [[ -n $pid_before ]] || die "no opendkim runs after the first wizard run"
    sleep 1   # let rsyslog write out what happened so far
    starts_before=$(count_log 'opendkim\[[0-9]+\]: OpenDKIM Filter .* starting')
    reloads_before=$(count_log 'opendkim\[[0-9]+\]: configuration reloaded')

    local ledger=$OUT/ledger.jsonl stop=$OUT/sender.stop sender w_start w_end
    python3 "$E2E/sender.py" --domain "$DOMAIN" --rcpt "$RCPT" \
        stream --ledger "$ledger" --stop "$stop" --every 0.1 --prefix outage \
        2>"$OUT/sender.stderr" &
    sender=$!
    sleep 2
    w_start=$(date +%s.%N)
    run_tool wizard2 0 "${ADD_WIZARD[@]}"
    w_end=$(date +%s.%N)
    log "wizard run 2 (adds second.test) under load: ok in ${T_RUN} s"
    sleep 2
    touch "$stop"
    wait "$sender" || die "the sender failed: $(cat "$OUT/sender.stderr")"
    log "sender stopped: $(wc -l <"$ledger") submissions"

    # Which opendkim actions happened: for the record, then checked below.
    sleep 1
    local pid_after starts_after reloads_after
    pid_after=$(opendkim_pids)
    starts_after=$(count_log 'opendkim\[[0-9]+\]: OpenDKIM Filter .* starting')
    reloads_after=$(count_log 'opendkim\[[0-9]+\]: configuration reloaded')
    {
        echo "opendkim pid before the second run: $pid_before, after: $pid_after"
        echo "mail.log 'starting': $starts_before -> $starts_after; 'configuration reloaded': $reloads_before -> $reloads_after"
        echo "service steps of wizard run 2:"
        python3 - "$OUT/wizard2.stdout" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1])).get("steps", []):
    if s.get("kind") == "service":
        print(f"  {s.get('name')} {s.get('action')} ({' '.join(s.get('argv', []))}): {s.get('status')}")
PY
        echo "opendkim lines of mail.log:"
        grep -E 'opendkim\[[0-9]+\]: (OpenDKIM Filter|configuration reloaded)' /var/log/mail.log || true
    } >"$OUT/opendkim-actions.txt"

    "$DKIM_SETUP" dns --format json >"$OUT/dns.json"
    python3 - "$OUT/dns-before.json" "$OUT/dns.json" <<'PY' || die "the DNS records are not as expected after adding a domain"
import json, sys
before = {r["name"].rstrip("."): r["value"] for r in json.load(open(sys.argv[1]))}
after = {r["name"].rstrip("."): r["value"] for r in json.load(open(sys.argv[2]))}
name = "key._domainkey.example.test"
assert before.get(name) and before[name] == after.get(name), f"the record of {name} changed"
assert "key._domainkey.second.test" in after, f"no record for second.test: {sorted(after)}"
PY

    local rc=0
    verify --dns "$OUT/dns.json" --timeout 60 --ledger "$ledger" --window "$w_start" "$w_end" \
        >"$OUT/outage.txt" || rc=$?
    cat "$OUT/outage.txt"
    OUTAGE=$(tail -n 1 "$OUT/outage.txt")
    ((rc == 0)) || die "mail was refused, lost, unsigned or not verified while a domain was added ($OUTAGE)"
    [[ $pid_after == "$pid_before" ]] \
        || die "opendkim's pid changed while a domain was added ('$pid_before' -> '$pid_after'): a restart, not a reload"
    ((starts_after == starts_before)) \
        || die "opendkim was started again while a domain was added (see $OUT/opendkim-actions.txt)"
    ((reloads_after == reloads_before + 1)) \
        || die "expected one 'configuration reloaded' in mail.log, saw $((reloads_after - reloads_before))"
    log "opendkim reloaded once (SIGUSR1), pid $pid_after kept, never restarted"
    echo "e2e: safety/outage: ${OUTAGE#outage: }; opendkim reloaded, pid kept (wizard ${T_RUN} s; inside total $((SECONDS - T_START)) s)"
}

# --- badconf: opendkim cannot start; everything is put back ------------------
part_badconf() {
    start_services
    install_opendkim
    [[ ! -e ${BAD_SETTING#* } ]] || die "${BAD_SETTING#* } exists in the tree"
    printf '%s\n' "$BAD_SETTING" >>/etc/opendkim.conf

    # Prove the setting is the kind meant: accepted by opendkim -n, fatal at start.
    local rc=0
    opendkim -n >"$OUT/opendkim-n.txt" 2>&1 || rc=$?
    ((rc == 0)) || die "opendkim -n rejects '$BAD_SETTING' (exit $rc): $(cat "$OUT/opendkim-n.txt")"
    rc=0
    service opendkim start >"$OUT/manual-start.txt" 2>&1 || rc=$?
    wait_for 10 grep -q 'failed to add resolver configuration file' /var/log/mail.log \
        || die "opendkim did not log the bad ResolverConfiguration (service start exit $rc)"
    wait_for 10 no_opendkim || die "opendkim keeps running with '$BAD_SETTING'"
    rm -f /run/opendkim/opendkim.pid   # the stale pid file of the dead daemon
    log "'$BAD_SETTING': opendkim -n exit 0, service start exit $rc, daemon died at once"

    snapshot before
    local main_cf
    main_cf=$(sha256sum /etc/postfix/main.cf)
    run_tool wizard 1 "${WIZARD[@]}"
    log "the wizard exited 1 in ${T_RUN} s: $(grep -E '^(error|nothing was left)' "$OUT/wizard.stderr" | paste -sd ' ')"
    grep -Eq 'opendkim is not running|opendkim did not (come up|start)' "$OUT/wizard.stderr" \
        || { show wizard; die "the failure does not say that opendkim did not come up"; }
    grep -Eq '^nothing was left half-done: restored .*/etc/opendkim\.conf' "$OUT/wizard.stderr" \
        || { show wizard; die "the failure does not say that /etc/opendkim.conf was restored"; }
    snapshot after
    same_etc before after
    grep -Fxq "$BAD_SETTING" /etc/opendkim.conf || die "the admin's '$BAD_SETTING' is gone"
    [[ $(sha256sum /etc/postfix/main.cf) == "$main_cf" ]] || die "main.cf is not byte-identical"
    wait_for 10 no_opendkim || die "an opendkim process is left: $(opendkim_pids)"
    "$DKIM_SETUP" revert --list >"$OUT/revert-list.txt" 2>&1 || true
    log "/etc identical (modes, owners, bytes), the admin's line kept, no opendkim left"

    send_mail sendmail safety-badconf-sendmail
    send_mail smtp safety-badconf-smtp
    verify --delivered-only --timeout 30 safety-badconf-sendmail safety-badconf-smtp \
        || die "Postfix does not deliver after the rolled-back run"
    log "Postfix still delivers (unsigned, as before the run)"
    echo "e2e: safety/badconf: '$BAD_SETTING' passes opendkim -n, the wizard exited 1 and restored /etc" \
         "byte for byte, no opendkim left, Postfix delivers (wizard ${T_RUN} s; inside total $((SECONDS - T_START)) s)"
}

# --- revert: a good run taken back -------------------------------------------
part_revert() {
    start_services
    install_opendkim
    snapshot before

    run_tool wizard1 0 "${WIZARD[@]}"
    local t_wizard1=$T_RUN
    "$DKIM_SETUP" dns --format json >"$OUT/dns1.json"
    send_mail sendmail safety-run1-sendmail
    send_mail smtp safety-run1-smtp
    verify --dns "$OUT/dns1.json" --timeout 30 safety-run1-sendmail safety-run1-smtp \
        || die "mail after the first run is not signed and verified"
    log "wizard run 1: ok in ${t_wizard1} s, mail signed and verified"
    "$DKIM_SETUP" revert --list >"$OUT/revert-list-1.txt"
    grep -Eq ' complete ' "$OUT/revert-list-1.txt" \
        || { cat "$OUT/revert-list-1.txt"; die "revert --list does not show a complete run"; }

    run_tool revert1 0 revert --json
    local t_revert1=$T_RUN
    python3 - "$OUT/revert1.stdout" <<'PY' || { show revert1; die "revert --json did not print one JSON object saying it changed something"; }
import json, sys
doc = json.load(open(sys.argv[1]))
assert isinstance(doc, dict) and doc.get("changed") is True, doc
PY
    snapshot after-revert
    same_etc before after-revert
    wait_for 5 no_opendkim || die "opendkim still runs after the revert (it did not run before): $(opendkim_pids)"
    log "revert: ok in ${t_revert1} s, /etc identical, opendkim stopped"
    send_mail sendmail safety-reverted-sendmail
    send_mail smtp safety-reverted-smtp
    verify --delivered-only --timeout 30 safety-reverted-sendmail safety-reverted-smtp \
        || die "Postfix does not deliver after the revert"
    log "Postfix still delivers after the revert"

    run_tool wizard2 0 "${WIZARD[@]}"
    "$DKIM_SETUP" dns --format json >"$OUT/dns2.json"
    send_mail smtp safety-run2-smtp
    verify --dns "$OUT/dns2.json" --timeout 30 safety-run2-smtp \
        || die "mail after the second run is not signed and verified"
    log "wizard run 2: ok in ${T_RUN} s, mail signed and verified"

    echo '# changed by hand after dkim-setup ran' >>/etc/opendkim.conf
    snapshot edited
    run_tool revert2 1 revert
    grep -q "'/etc/opendkim.conf'" "$OUT/revert2.stderr" \
        || { show revert2; die "the refusal does not name /etc/opendkim.conf"; }
    snapshot after-refusal
    same_etc edited after-refusal
    [[ -n $(opendkim_pids) ]] || die "the refused revert stopped opendkim"
    log "revert refused, naming /etc/opendkim.conf; nothing changed"

    run_tool revert3 0 revert --force
    local t_revert3=$T_RUN
    snapshot after-force
    same_etc before after-force
    wait_for 5 no_opendkim || die "opendkim still runs after revert --force: $(opendkim_pids)"
    "$DKIM_SETUP" revert --list >"$OUT/revert-list-2.txt"
    [[ $(grep -c ' reverted ' "$OUT/revert-list-2.txt") == 2 ]] \
        || { cat "$OUT/revert-list-2.txt"; die "revert --list does not show both runs reverted"; }
    send_mail sendmail safety-forced-sendmail
    verify --delivered-only --timeout 30 safety-forced-sendmail \
        || die "Postfix does not deliver after revert --force"
    log "revert --force: ok in ${t_revert3} s, /etc identical to before run 1, opendkim stopped, Postfix delivers"
    echo "e2e: safety/revert: revert restored /etc byte for byte and stopped opendkim, refused a hand-edited" \
         "file by name, --force restored it (wizard ${t_wizard1} s, revert ${t_revert1} s," \
         "revert --force ${t_revert3} s; inside total $((SECONDS - T_START)) s)"
}

case $PART in
    outage) part_outage ;;
    badconf) part_badconf ;;
    revert) part_revert ;;
    *) die "unknown part '$PART' (run.sh sets E2E_PART: outage, badconf, revert)" ;;
esac
