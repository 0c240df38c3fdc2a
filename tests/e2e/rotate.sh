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
#   cname     the two-slot scheme for example.test and second.test: each
#             domain's key and key1 are CNAMEs to dkim_a and dkim_b under
#             mail.example.net, served by dnsd.py with the slot TXT records.
#             `rotate --all` puts a new key into slot b and prints its one TXT
#             record; `rotate --all --activate` is refused while dkim_b does
#             not serve it, then switches both domains with a reload; mail
#             from both domains verifies (dkimpy following the CNAMEs) with
#             s=key before and s=key1 after; `rotate --all --retire` 8 days
#             later empties slot a.
#
# Everything after the wizard is written, command lines as typed and what
# they printed, to $OUT/transcript.txt. The last stdout line is the part's
# summary; artifacts go to $OUT.
# e2e-parts: selector cname
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS
PART=${E2E_PART:-}
NEW_SELECTOR=key1
DNS_PORT=5354
NS=127.0.0.1:$DNS_PORT
SENDER="python3 $E2E/sender.py --rcpt $RCPT"
SEND="$SENDER --domain $DOMAIN"
VERIFY="python3 $E2E/verify.py --mbox /var/mail/$RCPT --domain $DOMAIN"
# What a refused step must leave alone, and how to see opendkim's restarts.
TABLES_AND_PID="sha256sum /etc/opendkim/*Table /var/lib/dkim-setup/rotation.json; pgrep -x opendkim"
OPENDKIM_LOG="grep -E 'opendkim\[[0-9]+\]: (OpenDKIM Filter|configuration reloaded)' /var/log/mail.log"
STARTING='opendkim\[[0-9]+\]: OpenDKIM Filter .* starting'
RELOADED='opendkim\[[0-9]+\]: configuration reloaded'

# serve DNS_JSON [NAME...]: from now on dnsd.py serves the records (TXT and
# CNAME) of these names (all if none) as `dns --format json` printed them in
# DNS_JSON. The table is replaced in one rename: dnsd.py reads it per query.
serve() {
    local from=$1
    shift
    local names=${*:+ $*}
    tx "served-$((++SERVE_N))" 0 \
        "python3 $E2E/dnsd.py --table $from$names >$OUT/served.json.new && mv $OUT/served.json.new $OUT/served.json"
}
SERVE_N=0
# start_dnsd: dnsd.py on $NS, serving $OUT/served.json.
start_dnsd() {
    echo "\$ python3 $E2E/dnsd.py $DNS_PORT $OUT/served.json 2>$OUT/dnsd.stderr &" >>"$TRANSCRIPT"
    echo >>"$TRANSCRIPT"
    python3 "$E2E/dnsd.py" "$DNS_PORT" "$OUT/served.json" 2>"$OUT/dnsd.stderr" &
    wait_for 10 grep -q 'listening' "$OUT/dnsd.stderr" || die "dnsd.py did not start: $(cat "$OUT/dnsd.stderr")"
}
# start_transcript TEXT...: $OUT/transcript.txt begins with these lines.
start_transcript() {
    TRANSCRIPT=$OUT/transcript.txt
    printf '# %s\n' "$@" >"$TRANSCRIPT"
    echo >>"$TRANSCRIPT"
}
# opendkim_mark: remember opendkim's pid and how often mail.log says it
# started and reloaded; reloaded_once NAME then checks that since, opendkim
# reloaded exactly once, kept its pid and was not started again.
opendkim_mark() {
    MARK_PID=$(opendkim_pids)
    [[ -n $MARK_PID ]] || die "opendkim does not run"
    sleep 1   # let rsyslog write out what happened so far
    MARK_STARTS=$(count_log "$STARTING")
    MARK_RELOADS=$(count_log "$RELOADED")
}
reloaded_once() {
    sleep 1
    tx "$1" 0 "pgrep -x opendkim; $OPENDKIM_LOG"
    local pid starts reloads
    pid=$(opendkim_pids)
    starts=$(count_log "$STARTING")
    reloads=$(count_log "$RELOADED")
    [[ $pid == "$MARK_PID" ]] \
        || die "opendkim's pid changed ('$MARK_PID' -> '$pid'): a restart, not a reload"
    ((starts == MARK_STARTS)) || die "opendkim was started again (see $OUT/$1.stdout)"
    ((reloads == MARK_RELOADS + 1)) \
        || die "expected one 'configuration reloaded' in mail.log, saw $((reloads - MARK_RELOADS))"
}

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

    start_transcript "dkim-setup key rotation on a fresh Debian 12 system with Postfix and OpenDKIM" \
        "(after 'dkim-setup wizard --non-interactive --domain $DOMAIN --json'; mail signed with s=$SELECTOR)"

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
    serve "$OUT/dns-2.stdout" "$SELECTOR._domainkey.$DOMAIN"
    start_dnsd
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
    serve "$OUT/dns-2.stdout" "$SELECTOR._domainkey.$DOMAIN" "$NEW_SELECTOR._domainkey.$DOMAIN"
    opendkim_mark
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

    reloaded_once opendkim-4b
    tx tables-4 0 "cat /etc/opendkim/SigningTable"
    grep -Eq "^\*@${DOMAIN}[[:space:]]+${NEW_SELECTOR}\._domainkey\.$DOMAIN\$" /etc/opendkim/SigningTable \
        || die "the SigningTable does not sign $DOMAIN with $NEW_SELECTOR after the activation"
    # opendkim applies a SIGUSR1 at its next milter connection (the mail
    # after the signal), and logs it then; rsyslog's timestamps have microseconds.
    local reload_line t_reload
    reload_line=$(grep -E "$RELOADED" /var/log/mail.log | tail -n 1)
    t_reload=$(date -d "${reload_line%% *}" +%s.%N) || die "cannot read the time of the log line '$reload_line'"
    note "the activation ran from $w_start to $w_end (epoch seconds); opendkim logged 'configuration reloaded' at $t_reload, at the first milter connection after the signal"
    log "4. activate under load: ok in ${t_activate} s; opendkim reloaded once, pid $MARK_PID kept"

    # 5. Every mail of the window: delivered, verified with both records, s=key
    #    before the switch and s=key1 after.
    note "step 5: every mail of the window is delivered and verified by dkimpy against the records of both selectors; s=$SELECTOR if submitted before the activation ran, s=$NEW_SELECTOR if submitted after it exited"
    tx verify-5 any "$VERIFY --dns $OUT/dns-2.stdout --timeout 60 --ledger $ledger --window $w_start $w_end --expect-switch $SELECTOR $NEW_SELECTOR"
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
    [[ $(opendkim_pids) == "$MARK_PID" ]] || die "opendkim's pid changed at the retirement: '$MARK_PID' -> '$(opendkim_pids)'"
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
         "(nothing changed), opendkim reloaded with its pid kept, retirement refused then done 8 days later" \
         "(wizard ${t_wizard} s, rotate ${t_start} s, activate ${t_activate} s, retire ${t_retire} s;" \
         "inside total $((SECONDS - T_START)) s)"
}

# --- cname: two slots behind CNAMEs, two domains ----------------------------
SLOT_HOST=mail.example.net
DOMAINS=("$DOMAIN" second.test)
# mail_all TAG: one mail by sendmail and one by SMTP from each domain.
mail_all() {
    local d via
    for d in "${DOMAINS[@]}"; do
        for via in sendmail smtp; do
            tx "mail-$1-$d-$via" 0 "$SENDER --domain $d once $via rotate-$1-$d-$via"
        done
    done
}
# verify_all TAG SELECTOR: dkimpy verifies every mail of mail_all TAG with
# s=SELECTOR by its From domain, against what dnsd.py serves (CNAMEs followed).
verify_all() {
    local d via markers=()
    for d in "${DOMAINS[@]}"; do
        for via in sendmail smtp; do markers+=("rotate-$1-$d-$via"); done
    done
    tx "verify-$1" 0 "python3 $E2E/verify.py --mbox /var/mail/$RCPT --domain ${DOMAINS[0]} --domain ${DOMAINS[1]} --zone $OUT/served.json --selector $2 --timeout 30 ${markers[*]}"
    VERIFIED=$((VERIFIED + ${#markers[@]}))
}
VERIFIED=0

part_cname() {
    start_services

    # The wizard: both domains on slot a.
    tx wizard 0 "dkim-setup wizard --non-interactive --rotation cname --slot-host $SLOT_HOST --domain ${DOMAINS[0]} --domain ${DOMAINS[1]} --json"
    local t_wizard=$T_RUN
    start_transcript "dkim-setup two-slot CNAME rotation on a fresh Debian 12 system with Postfix and OpenDKIM" \
        "(after 'dkim-setup wizard --non-interactive --rotation cname --slot-host $SLOT_HOST --domain ${DOMAINS[0]} --domain ${DOMAINS[1]} --json')"
    note "the records the wizard asks for: each domain's two CNAMEs and slot a's TXT record; dnsd.py on $NS serves them all"
    tx dns-c1 0 "dkim-setup dns --format json"
    python3 - "$OUT/dns-c1.stdout" "$SLOT_HOST" "${DOMAINS[@]}" <<'PY' || { show dns-c1; die "dns --format json does not list the CNAMEs and slot a's record"; }
import json, sys
recs = json.load(open(sys.argv[1]))
host, domains = sys.argv[2], sys.argv[3:]
got = [(r["name"].rstrip("."), r["type"], r["value"] if r["type"] == "CNAME" else "") for r in recs]
want = [(f"{sel}._domainkey.{d}", "CNAME", f"dkim_{slot}.{host}") for d in domains for sel, slot in (("key", "a"), ("key1", "b"))]
want.append((f"dkim_a.{host}", "TXT", ""))
assert got == want, f"{got} != {want}"
PY
    serve "$OUT/dns-c1.stdout"
    start_dnsd
    mail_all initial
    verify_all initial "$SELECTOR"
    log "wizard (cname): ok in ${t_wizard} s; mail from both domains verifies through key -> dkim_a"

    # 1. rotate --all: a new key into slot b, one TXT record.
    note "rotate --all: a new key into slot b; one TXT record to publish, signing unchanged"
    tx rotate-start 0 "dkim-setup rotate --all --json"
    local t_start=$T_RUN
    tx dns-c2 0 "dkim-setup dns --format json"
    python3 - "$OUT/rotate-start.stdout" "$OUT/dns-c1.stdout" "$OUT/dns-c2.stdout" "$SLOT_HOST" <<'PY' \
        || { show rotate-start; show dns-c2; die "rotate --all did not print the one TXT record of slot b, or dns disagrees"; }
import json, sys
start, dns1, dns2 = (json.load(open(p)) for p in sys.argv[1:4])
host = sys.argv[4]
printed = start.get("dns_records")
assert [(r["name"].rstrip("."), r["type"]) for r in printed] == [(f"dkim_b.{host}", "TXT")], printed
before = {(r["name"], r["type"]): r["value"] for r in dns1}
after = {(r["name"], r["type"]): r["value"] for r in dns2}
b = (f"dkim_b.{host}", "TXT")
assert after.get(b) == printed[0]["value"], "dns and rotate disagree on slot b"
assert {k: v for k, v in after.items() if k != b} == before, "other records changed"
PY
    tx tables-c2 0 "cat /etc/opendkim/KeyTable /etc/opendkim/SigningTable; ls -l /etc/opendkim/keys/slots/"
    local d
    for d in "${DOMAINS[@]}"; do
        grep -Eq "^${NEW_SELECTOR}\._domainkey\.${d}[[:space:]].*/slots/b\.private\$" /etc/opendkim/KeyTable \
            || die "the KeyTable has no $NEW_SELECTOR line on slot b for $d"
        grep -Eq "^\*@${d}[[:space:]]+${SELECTOR}\._domainkey\.${d}\$" /etc/opendkim/SigningTable \
            || die "the SigningTable no longer signs $d with $SELECTOR before the activation"
    done
    mail_all pending
    verify_all pending "$SELECTOR"

    # 2. Refused while dkim_b serves nothing; then both domains switch.
    note "dkim_b.$SLOT_HOST is not served yet (the CNAMEs point at nothing): the activation must be refused"
    snapshot before-refusal /etc /var/lib/dkim-setup
    tx state-c3a 0 "$TABLES_AND_PID"
    tx activate-refused 1 "dkim-setup rotate --all --activate --nameserver $NS"
    if ! { grep -q 'DNS does not serve the new key' "$OUT/activate-refused.stderr" \
        && grep -q 'no domain was switched' "$OUT/activate-refused.stderr"; }; then
        show activate-refused
        die "the refusal does not say that DNS does not serve the new key and no domain was switched"
    fi
    tx state-c3b 0 "$TABLES_AND_PID"
    cmp -s "$OUT/state-c3a.stdout" "$OUT/state-c3b.stdout" \
        || { diff "$OUT/state-c3a.stdout" "$OUT/state-c3b.stdout" || true; die "the refused activation changed the tables, the state or opendkim's pid"; }
    snapshot after-refusal /etc /var/lib/dkim-setup
    same_etc before-refusal after-refusal

    note "dnsd.py now serves slot b's TXT record too: both domains switch at once, with a reload"
    serve "$OUT/dns-c2.stdout"
    opendkim_mark
    tx activate 0 "dkim-setup rotate --all --activate --nameserver $NS"
    local t_activate=$T_RUN
    tx tables-c4 0 "cat /etc/opendkim/SigningTable"
    for d in "${DOMAINS[@]}"; do
        grep -Eq "^\*@${d}[[:space:]]+${NEW_SELECTOR}\._domainkey\.${d}\$" /etc/opendkim/SigningTable \
            || die "the SigningTable does not sign $d with $NEW_SELECTOR after the activation"
    done
    mail_all active
    verify_all active "$NEW_SELECTOR"
    # opendkim applies a SIGUSR1 at its next milter connection: look after the mail.
    reloaded_once opendkim-c4
    log "activate --all: refused while dkim_b was missing, then ok in ${t_activate} s; both domains s=$NEW_SELECTOR, opendkim reloaded, pid kept"

    # 3. Retire slot a: refused at once, done 8 days later.
    note "rotate --all --retire: refused now (retention period), done with the clock 8 days ahead"
    tx retire-early 1 "dkim-setup rotate --all --retire"
    grep -q 'is kept until' "$OUT/retire-early.stderr" \
        || { show retire-early; die "the early retirement does not name the retention period"; }
    [[ -e /etc/opendkim/keys/slots/a.private ]] || die "the refused retirement removed slot a"
    local later
    later=$(($(date +%s) + 8 * 86400))
    tx retire 0 "DKIM_SETUP_TEST_NOW=$later dkim-setup rotate --all --retire"
    local t_retire=$T_RUN
    grep -q "dkim_a.$SLOT_HOST may now be deleted" "$OUT/retire.stdout" \
        || { show retire; die "the retirement does not say that dkim_a.$SLOT_HOST may be deleted"; }
    tx keys-c5 0 "ls -l /etc/opendkim/keys/slots/; cat /etc/opendkim/KeyTable"
    [[ ! -e /etc/opendkim/keys/slots/a.private ]] || die "slot a's key is still there after the retirement"
    [[ -e /etc/opendkim/keys/slots/b.private ]] || die "slot b's key is gone after the retirement"
    ! grep -q 'slots/a\.private' /etc/opendkim/KeyTable || die "the KeyTable still names slot a"
    [[ $(opendkim_pids) == "$MARK_PID" ]] || die "opendkim's pid changed at the retirement"
    tx dns-c5 0 "dkim-setup dns --format json"
    python3 - "$OUT/dns-c2.stdout" "$OUT/dns-c5.stdout" "$SLOT_HOST" <<'PY' || { show dns-c5; die "after the retirement dns does not list the CNAMEs and slot b's record alone"; }
import json, sys
before, after = (json.load(open(p)) for p in sys.argv[1:3])
a = (f"dkim_a.{sys.argv[3]}", "TXT")
want = [(r["name"], r["type"], r["value"]) for r in before if (r["name"], r["type"]) != a]
assert [(r["name"], r["type"], r["value"]) for r in after] == want, after
PY
    note "the admin deletes dkim_a.$SLOT_HOST from DNS; the CNAMEs stay"
    serve "$OUT/dns-c5.stdout"
    mail_all retired
    verify_all retired "$NEW_SELECTOR"
    tx status-c6 0 "dkim-setup status --json"
    python3 - "$OUT/status-c6.stdout" "$NEW_SELECTOR" "${DOMAINS[@]}" <<'PY' || { show status-c6; die "status --json does not show both domains on $NEW_SELECTOR (cname)"; }
import json, sys
doc = json.load(open(sys.argv[1]))
rows = {r["domain"]: r for r in doc["domains"]}
for d in sys.argv[3:]:
    row = rows[d]
    assert row["selector"] == sys.argv[2] and row["scheme"] == "cname", row
    assert row.get("pending") is None and row.get("retiring") is None, row
PY
    log "retire --all: refused at once, ok 8 days later in ${t_retire} s; slot a gone, mail verifies with s=$NEW_SELECTOR"

    echo "e2e: rotate/cname: ${DOMAINS[0]} and ${DOMAINS[1]} behind CNAMEs to dkim_a/dkim_b.$SLOT_HOST: rotate --all printed slot b's" \
         "one TXT record, the activation was refused (nothing changed) until dkim_b served it, then switched both" \
         "domains with a reload (pid kept); $VERIFIED mails verified by dkimpy through the CNAMEs, s=$SELECTOR before" \
         "and s=$NEW_SELECTOR after; slot a retired 8 days later (wizard ${t_wizard} s, rotate ${t_start} s," \
         "activate ${t_activate} s, retire ${t_retire} s; inside total $((SECONDS - T_START)) s)"
}

case $PART in
    selector) part_selector ;;
    cname) part_cname ;;
    *) die "unknown part '$PART' (run.sh sets E2E_PART: selector, cname)" ;;
esac
