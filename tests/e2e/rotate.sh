#!/bin/bash
# Runs inside the throwaway test system, once per part below, each part on a
# fresh tree (run.sh reads the e2e-parts line). It proves, for real, that a
# key rotation with dkim-setup never leaves mail unsigned, lost, or signed
# with a key that DNS does not serve:
#
#   selector  after the wizard, `rotate` adds a key under selector key1 and
#             prints its record while mail is still signed with s=key;
#             `rotate --activate` is refused while the DNS server (dnsd.py)
#             does not serve key1, and nothing changes; once it does, the
#             activation runs while mail is submitted every 100 ms (SMTP and
#             sendmail): every mail is delivered and verified by dkimpy with
#             the records of both selectors, s=key before the switch and
#             s=key1 after, and opendkim is reloaded (SIGUSR1), not restarted.
#             `rotate --retire` is refused within the retention period and,
#             8 days later (DKIM_SETUP_TEST_NOW), removes the old key; mail
#             still verifies with s=key1.
#
# Steps 2-6 (everything after the wizard) are written, command lines as typed
# and what they printed, to $OUT/transcript.txt. The last stdout line is the
# part's summary; artifacts go to $OUT.
# e2e-parts: selector
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS
PART=${E2E_PART:-}
NEW_SELECTOR=key1
DNS_PORT=5354
NS=127.0.0.1:$DNS_PORT
SEND="python3 $E2E/sender.py --domain $DOMAIN --rcpt $RCPT"
VERIFY="python3 $E2E/verify.py --mbox /var/mail/$RCPT --domain $DOMAIN"
# What a refused step must leave alone, and how to see opendkim's restarts.
TABLES_AND_PID="sha256sum /etc/opendkim/*Table /var/lib/dkim-setup/rotation.json; pgrep -x opendkim"
OPENDKIM_LOG="grep -E 'opendkim\[[0-9]+\]: (OpenDKIM Filter|configuration reloaded)' /var/log/mail.log"
STARTING='opendkim\[[0-9]+\]: OpenDKIM Filter .* starting'
RELOADED='opendkim\[[0-9]+\]: configuration reloaded'

# serve NAME...: dnsd.py serves the TXT records of these names, as
# `dns --format json` printed them after the rotation started.
serve() {
    local names=$*
    tx "served-$((++SERVE_N))" 0 \
        "python3 $E2E/dnsd.py --table $OUT/dns-2.stdout $names >$OUT/served.json.new && mv $OUT/served.json.new $OUT/served.json"
}
SERVE_N=0

# --- selector: key -> key1 ---------------------------------------------------
part_selector() {
    start_services

    # 1. The wizard; a mail verifies with s=key.
    tx wizard 0 "dkim-setup wizard --non-interactive --domain $DOMAIN --json"
    local t_wizard=$T_RUN
    tx dns-1 0 "dkim-setup dns --format json"
    send_mail sendmail rotate-initial-sendmail
    verify --dns "$OUT/dns-1.stdout" --timeout 30 rotate-initial-sendmail \
        || die "mail after the wizard is not signed with s=$SELECTOR and verified"
    log "1. wizard: ok in ${t_wizard} s, mail verifies with s=$SELECTOR"

    TRANSCRIPT=$OUT/transcript.txt
    {
        echo "# dkim-setup key rotation on a fresh Debian 12 system with Postfix and OpenDKIM"
        echo "# (after 'dkim-setup wizard --non-interactive --domain $DOMAIN --json'; mail signed with s=$SELECTOR)"
        echo
    } >"$TRANSCRIPT"

    # 2. A new key under key1; signing unchanged.
    note "step 2: start the rotation: a new key under selector $NEW_SELECTOR, signing unchanged"
    tx rotate-start 0 "dkim-setup rotate --domain $DOMAIN --json"
    local t_start=$T_RUN
    tx dns-2 0 "dkim-setup dns --format json"
    python3 - "$OUT/rotate-start.stdout" "$OUT/dns-1.stdout" "$OUT/dns-2.stdout" "$DOMAIN" "$SELECTOR" "$NEW_SELECTOR" <<'PY' \
        || { show rotate-start; show dns-2; die "the new key's record is not as printed, or dns does not list both"; }
import json, sys
start, dns1, dns2 = (json.load(open(p)) for p in sys.argv[1:4])
domain, old, new = sys.argv[4:7]
old_name, new_name = f"{old}._domainkey.{domain}", f"{new}._domainkey.{domain}"
assert start.get("rotation") == "start", start.get("rotation")
printed = start.get("dns_records")
assert isinstance(printed, list) and [r["name"].rstrip(".") for r in printed] == [new_name], \
    f"rotate printed {printed!r}, expected one record for {new_name}"
assert printed[0]["type"] == "TXT" and printed[0]["value"].startswith("v=DKIM1; k=rsa; p="), printed[0]
before = {r["name"].rstrip("."): r["value"] for r in dns1}
after = {r["name"].rstrip("."): r["value"] for r in dns2}
assert sorted(after) == sorted([old_name, new_name]), f"dns lists {sorted(after)}"
assert after[old_name] == before[old_name], f"the record of {old_name} changed"
assert after[new_name] == printed[0]["value"], f"dns and rotate disagree on {new_name}"
assert after[new_name] != after[old_name], "the new key is the old one"
PY
    tx tables-2 0 "cat /etc/opendkim/KeyTable /etc/opendkim/SigningTable"
    grep -Eq "^${NEW_SELECTOR}\._domainkey\.${DOMAIN}[[:space:]]" /etc/opendkim/KeyTable \
        || die "the KeyTable has no line for $NEW_SELECTOR"
    grep -Eq "^\*@${DOMAIN}[[:space:]]+${SELECTOR}\._domainkey\.$DOMAIN\$" /etc/opendkim/SigningTable \
        || die "the SigningTable no longer signs $DOMAIN with $SELECTOR before the activation"
    tx mail-2a 0 "$SEND once sendmail rotate-pending-sendmail"
    tx mail-2b 0 "$SEND once smtp rotate-pending-smtp"
    tx verify-2 0 "$VERIFY --dns $OUT/dns-2.stdout --selector $SELECTOR --timeout 30 rotate-pending-sendmail rotate-pending-smtp"
    log "2. rotate: ok in ${t_start} s; key1 printed, dns lists both, mail still s=$SELECTOR"

    # 3. DNS does not serve key1 yet: the activation is refused, nothing changes.
    note "step 3: a DNS server on $NS that serves only the old record: the activation must be refused"
    serve "$SELECTOR._domainkey.$DOMAIN"
    echo "\$ python3 $E2E/dnsd.py $DNS_PORT $OUT/served.json 2>$OUT/dnsd.stderr &" >>"$TRANSCRIPT"
    python3 "$E2E/dnsd.py" "$DNS_PORT" "$OUT/served.json" 2>"$OUT/dnsd.stderr" &
    echo >>"$TRANSCRIPT"
    wait_for 10 grep -q 'listening' "$OUT/dnsd.stderr" || die "dnsd.py did not start: $(cat "$OUT/dnsd.stderr")"
    snapshot before-refusal /etc /var/lib/dkim-setup
    tx state-3a 0 "$TABLES_AND_PID"
    tx status-3 0 "dkim-setup status --nameserver $NS"
    grep -q 'not in DNS yet' "$OUT/status-3.stdout" || { show status-3; die "status does not say that the pending key is not in DNS yet"; }
    tx activate-refused 1 "dkim-setup rotate --domain $DOMAIN --activate --nameserver $NS"
    grep -q 'DNS does not serve the new key' "$OUT/activate-refused.stderr" \
        || { show activate-refused; die "the refusal does not say 'DNS does not serve the new key'"; }
    tx state-3b 0 "$TABLES_AND_PID"
    cmp -s "$OUT/state-3a.stdout" "$OUT/state-3b.stdout" \
        || { diff "$OUT/state-3a.stdout" "$OUT/state-3b.stdout" || true; die "the refused activation changed the tables, the state or opendkim's pid"; }
    snapshot after-refusal /etc /var/lib/dkim-setup
    same_etc before-refusal after-refusal
    log "3. activation refused while DNS lacks $NEW_SELECTOR; tables, state, pid and /etc unchanged"

    # 4. DNS serves both: activate while mail flows.
    note "step 4: the DNS server now serves both records; the activation runs while sender.py submits a mail every 100 ms (SMTP and sendmail, alternating) from 2 s before to 2 s after"
    serve "$SELECTOR._domainkey.$DOMAIN" "$NEW_SELECTOR._domainkey.$DOMAIN"
    local pid_before starts_before reloads_before
    pid_before=$(opendkim_pids)
    [[ -n $pid_before ]] || die "no opendkim runs before the activation"
    sleep 1   # let rsyslog write out what happened so far
    starts_before=$(count_log "$STARTING")
    reloads_before=$(count_log "$RELOADED")
    tx opendkim-4a 0 "pgrep -x opendkim; $OPENDKIM_LOG"

    local ledger=$OUT/ledger.jsonl stop=$OUT/sender.stop sender w_start w_end
    echo "\$ $SEND stream --ledger $ledger --stop $stop --every 0.1 --prefix rotate 2>$OUT/sender.stderr &" >>"$TRANSCRIPT"
    eval "$SEND stream --ledger $ledger --stop $stop --every 0.1 --prefix rotate 2>$OUT/sender.stderr &"
    sender=$!
    printf '$ sleep 2\n\n' >>"$TRANSCRIPT"
    sleep 2
    w_start=$(date +%s.%N)
    tx activate 0 "dkim-setup rotate --domain $DOMAIN --activate --nameserver $NS"
    w_end=$(date +%s.%N)
    local t_activate=$T_RUN
    printf '$ sleep 2; touch %s; wait\n' "$stop" >>"$TRANSCRIPT"
    sleep 2
    touch "$stop"
    wait "$sender" || die "the sender failed: $(cat "$OUT/sender.stderr")"
    printf -- '--- stderr\n%s\n\n' "$(cat "$OUT/sender.stderr")" >>"$TRANSCRIPT"
    log "sender stopped: $(wc -l <"$ledger") submissions"

    sleep 1
    tx opendkim-4b 0 "pgrep -x opendkim; $OPENDKIM_LOG"
    tx tables-4 0 "cat /etc/opendkim/SigningTable"
    grep -Eq "^\*@${DOMAIN}[[:space:]]+${NEW_SELECTOR}\._domainkey\.$DOMAIN\$" /etc/opendkim/SigningTable \
        || die "the SigningTable does not sign $DOMAIN with $NEW_SELECTOR after the activation"
    local pid_after starts_after reloads_after
    pid_after=$(opendkim_pids)
    starts_after=$(count_log "$STARTING")
    reloads_after=$(count_log "$RELOADED")
    [[ $pid_after == "$pid_before" ]] \
        || die "opendkim's pid changed during the activation ('$pid_before' -> '$pid_after'): a restart, not a reload"
    ((starts_after == starts_before)) || die "opendkim was started again during the activation (see $OUT/opendkim-4b.stdout)"
    ((reloads_after == reloads_before + 1)) \
        || die "expected one 'configuration reloaded' in mail.log, saw $((reloads_after - reloads_before))"
    # When the switch took effect: opendkim logs the reload once it is done
    # (rsyslog's timestamps have microseconds), which may be after the tool exited.
    local reload_line t_reload
    reload_line=$(grep -E "$RELOADED" /var/log/mail.log | tail -n 1)
    t_reload=$(date -d "${reload_line%% *}" +%s.%N) || die "cannot read the time of the log line '$reload_line'"
    RELOAD_LAG=$(python3 -c 'import sys; print(round((float(sys.argv[1]) - float(sys.argv[2])) * 1000))' "$t_reload" "$w_end")
    if ((RELOAD_LAG >= 0)); then RELOAD_WHEN="${RELOAD_LAG} ms after"; else RELOAD_WHEN="$((-RELOAD_LAG)) ms before"; fi
    note "the activation ran from $w_start to $w_end; opendkim logged 'configuration reloaded' at $t_reload, $RELOAD_WHEN the activation exited"
    log "4. activate under load: ok in ${t_activate} s; opendkim reloaded once, pid $pid_after kept"

    # 5. Every mail of the window: delivered, verified with both records, s=key
    #    before the switch and s=key1 after.
    note "step 5: every mail of the window is delivered and verified by dkimpy against the records of both selectors; s=$SELECTOR if submitted before the activation ran, s=$NEW_SELECTOR if submitted after opendkim's reload"
    tx verify-5 any "$VERIFY --dns $OUT/dns-2.stdout --timeout 60 --ledger $ledger --window $w_start $w_end --expect-switch $SELECTOR $NEW_SELECTOR --switched-at $t_reload"
    cat "$OUT/verify-5.stdout"
    ROTATE=$(tail -n 1 "$OUT/verify-5.stdout")
    ((TX_RC == 0)) || die "mail was refused, lost, unsigned, not verified or signed with the wrong selector during the activation ($ROTATE)"
    [[ $ROTATE =~ ^rotate:\ sent\ [0-9]+,\ delivered\ [0-9]+,\ s=$SELECTOR\ [1-9][0-9]*,\ s=$NEW_SELECTOR\ [1-9][0-9]*,\ unsigned\ 0,\ lost\ 0$ ]] \
        || die "unexpected summary from verify.py: $ROTATE"
    log "5. $ROTATE"

    # 6. Retire: refused within the retention period, done 8 days later.
    note "step 6: retire the old key: refused now (retention period), done with the clock 8 days ahead"
    tx retire-early 1 "dkim-setup rotate --domain $DOMAIN --retire"
    grep -q 'is kept until' "$OUT/retire-early.stderr" \
        || { show retire-early; die "the early retirement does not name the retention period"; }
    [[ -e /etc/opendkim/keys/$DOMAIN/$SELECTOR.private ]] || die "the refused retirement removed the old key"
    local later
    later=$(($(date +%s) + 8 * 86400))
    tx retire 0 "DKIM_SETUP_TEST_NOW=$later dkim-setup rotate --domain $DOMAIN --retire"
    local t_retire=$T_RUN
    tx keys-6 0 "ls -l /etc/opendkim/keys/$DOMAIN/; cat /etc/opendkim/KeyTable"
    [[ ! -e /etc/opendkim/keys/$DOMAIN/$SELECTOR.private ]] || die "$SELECTOR.private is still there after the retirement"
    [[ -e /etc/opendkim/keys/$DOMAIN/$NEW_SELECTOR.private ]] || die "$NEW_SELECTOR.private is gone after the retirement"
    ! grep -Eq "^${SELECTOR}\._domainkey\." /etc/opendkim/KeyTable || die "the KeyTable still names $SELECTOR"
    [[ $(opendkim_pids) == "$pid_before" ]] || die "opendkim's pid changed at the retirement: '$pid_before' -> '$(opendkim_pids)'"
    tx dns-6 0 "dkim-setup dns --format json"
    tx mail-6a 0 "$SEND once sendmail rotate-retired-sendmail"
    tx mail-6b 0 "$SEND once smtp rotate-retired-smtp"
    tx verify-6 0 "$VERIFY --dns $OUT/dns-6.stdout --selector $NEW_SELECTOR --timeout 30 rotate-retired-sendmail rotate-retired-smtp"
    tx status-6 0 "dkim-setup status --json"
    python3 - "$OUT/status-6.stdout" "$DOMAIN" "$NEW_SELECTOR" <<'PY' || { show status-6; die "status --json does not show $NEW_SELECTOR alone"; }
import json, sys
doc = json.load(open(sys.argv[1]))
rows = {r["domain"]: r for r in doc["domains"]}
row = rows[sys.argv[2]]
assert row["selector"] == sys.argv[3], row
assert row.get("pending") is None and row.get("retiring") is None, row
PY
    log "6. retire: refused at once, ok 8 days later in ${t_retire} s; $SELECTOR.private gone, mail verifies with s=$NEW_SELECTOR"

    echo "e2e: rotate/selector: ${ROTATE#rotate: }; activation refused while DNS lacked $NEW_SELECTOR" \
         "(nothing changed), opendkim reloaded with its pid kept (reload logged $RELOAD_WHEN the tool exited)," \
         "retirement refused then done 8 days later" \
         "(wizard ${t_wizard} s, rotate ${t_start} s, activate ${t_activate} s, retire ${t_retire} s;" \
         "inside total $((SECONDS - T_START)) s)"
}

case $PART in
    selector) part_selector ;;
    *) die "unknown part '$PART' (run.sh sets E2E_PART: selector)" ;;
esac
