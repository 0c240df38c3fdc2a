#!/bin/bash
# Runs inside the throwaway test system (a chroot in private mount/net/pid/uts
# namespaces, set up by run.sh): what an admin does on a fresh "Local only"
# Postfix server, then the checks.
#
#   1. start rsyslogd (so /dev/log exists: opendkim logs only to syslog) and Postfix
#   2. dkim-setup wizard --non-interactive --domain example.test --json
#      dkim-setup dns --format json
#   3. one mail through /usr/sbin/sendmail, one through SMTP to 127.0.0.1:25
#   4. verify.py: both delivered to /var/mail/$RCPT, signed, and verified by
#      dkimpy against the TXT record that `dns --format json` printed
#   5. the same wizard again: "changed": false, no restart/reload, same opendkim pid
#   6. a run whose opendkim cannot start (port taken) exits 1, restores every
#      file, brings the old opendkim back, and mail is signed again
#
# Artifacts go to $OUT (run.sh copies them out). The last line on stdout is the
# summary; any failure exits non-zero with the reason on stdout/stderr.
set -euo pipefail


# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS

# --- 1. syslog and Postfix -------------------------------------------------
start_services

# --- 2. the tool -----------------------------------------------------------
t=$SECONDS
set +e
"$DKIM_SETUP" "${WIZARD[@]}" >"$OUT/wizard1.json" 2>"$OUT/wizard1.stderr"
rc=$?
set -e
T_WIZARD1=$((SECONDS - t))
if ((rc != 0)); then
    show_run wizard1
    die "dkim-setup ${WIZARD[*]} exited $rc"
fi
log "wizard run 1: ok in ${T_WIZARD1} s"
python3 "$E2E/checks.py" first-run "$OUT/wizard1.json" \
    || { show_run wizard1; die "wizard run 1: JSON output is not as the spec says"; }

set +e
"$DKIM_SETUP" dns --format json >"$OUT/dns.json" 2>"$OUT/dns.stderr"
rc=$?
set -e
((rc == 0)) || { show_run dns; die "dkim-setup dns --format json exited $rc"; }
# The records printed by the wizard and by `dns` must be the same.
python3 "$E2E/checks.py" records "$OUT/wizard1.json" "$OUT/dns.json" \
    || { show_run dns; die "dns --format json: output is not as the spec says"; }

pids1=$(opendkim_pids)
[[ -n $pids1 ]] || die "no opendkim process is running after the wizard"
port_open 8891 || die "nothing answers on 127.0.0.1:8891 after the wizard"
log "opendkim running (pid $pids1), dns.json saved"

# --- 3. two mails ----------------------------------------------------------
# sendmail: goes through pickup/cleanup, i.e. non_smtpd_milters.
/usr/sbin/sendmail -f "someone@$DOMAIN" -i "$RCPT" <<EOF || die "sendmail exited non-zero"
From: Someone <someone@$DOMAIN>
To: $RCPT@localhost
Subject: e2e-via-sendmail
Message-ID: <e2e-sendmail@$DOMAIN>

Signed through sendmail (non_smtpd_milters).
EOF

# SMTP to 127.0.0.1:25: goes through smtpd, i.e. smtpd_milters.
python3 - "$DOMAIN" "$RCPT" <<'EOF' || die "SMTP submission to 127.0.0.1:25 failed"
import smtplib, sys
domain, rcpt = sys.argv[1:3]
msg = (f"From: Someone <someone@{domain}>\r\n"
       f"To: {rcpt}@localhost\r\n"
       "Subject: e2e-via-smtp\r\n"
       f"Message-ID: <e2e-smtp@{domain}>\r\n"
       "\r\n"
       "Signed through smtpd (smtpd_milters).\r\n")
with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
    s.sendmail(f"someone@{domain}", [f"{rcpt}@localhost"], msg)
EOF
log "both mails submitted"

# --- 4. delivered, signed, verified ----------------------------------------
t=$SECONDS
python3 "$E2E/verify.py" --mbox "/var/mail/$RCPT" --dns "$OUT/dns.json" \
    --domain "$DOMAIN" --selector "$SELECTOR" --timeout 30 \
    e2e-via-sendmail e2e-via-smtp \
    || die "DKIM check of the delivered mails failed (see verify: lines above)"
log "both mails delivered+verified in $((SECONDS - t)) s"

# --- 5. second run: idempotent ---------------------------------------------
sleep 1   # let rsyslog write out what happened so far
starts_before=$(count_log 'opendkim\[[0-9]+\]: OpenDKIM Filter .* starting')
reloads_before=$(count_log 'opendkim\[[0-9]+\]: configuration reloaded|postfix/(postfix-script|master)\[[0-9]+\]: .*(reload|starting the Postfix)')
t=$SECONDS
set +e
"$DKIM_SETUP" "${WIZARD[@]}" >"$OUT/wizard2.json" 2>"$OUT/wizard2.stderr"
rc=$?
set -e
T_WIZARD2=$((SECONDS - t))
if ((rc != 0)); then
    show_run wizard2
    die "second dkim-setup ${WIZARD[*]} exited $rc"
fi
python3 "$E2E/checks.py" second-run "$OUT/wizard2.json" \
    || { show_run wizard2; die "second run was not a no-op (see check: lines above)"; }
sleep 1
pids2=$(opendkim_pids)
[[ $pids1 == "$pids2" ]] || die "opendkim pid changed on the second run: '$pids1' -> '$pids2'"
starts_after=$(count_log 'opendkim\[[0-9]+\]: OpenDKIM Filter .* starting')
reloads_after=$(count_log 'opendkim\[[0-9]+\]: configuration reloaded|postfix/(postfix-script|master)\[[0-9]+\]: .*(reload|starting the Postfix)')
[[ $starts_before == "$starts_after" && $reloads_before == "$reloads_after" ]] \
    || die "the second run restarted or reloaded a service (mail.log: opendkim starts $starts_before -> $starts_after, reloads $reloads_before -> $reloads_after)"
log "wizard run 2: unchanged, nothing restarted, opendkim pid $pids2 kept (${T_WIZARD2} s)"

# --- 6. a start that fails is rolled back ----------------------------------
# Another program holds the new port, so opendkim cannot come up there after
# the restart that the socket change needs. The tool must exit 1, restore
# every file byte for byte, remove what it created, bring the old opendkim
# back, and mail must be signed again as before.
watched=(/etc/opendkim.conf /etc/default/opendkim /etc/postfix/main.cf
         /etc/opendkim/KeyTable /etc/opendkim/SigningTable /etc/opendkim/TrustedHosts)
sha256sum "${watched[@]}" >"$OUT/before-rollback.sum"
python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8892)); s.listen(5); time.sleep(300)' &
squatter=$!
wait_for 10 port_open 8892 || die "could not occupy 127.0.0.1:8892 for the rollback scenario"
t=$SECONDS
set +e
"$DKIM_SETUP" wizard --non-interactive --domain "$DOMAIN" --domain second.test \
    --socket inet:8892@127.0.0.1 --json >"$OUT/wizard3.json" 2>"$OUT/wizard3.stderr"
rc=$?
set -e
T_WIZARD3=$((SECONDS - t))
kill "$squatter" 2>/dev/null || true
((rc == 1)) || { show_run wizard3; die "a run whose opendkim cannot start exited $rc, not 1"; }
grep -q "taken by another program" "$OUT/wizard3.stderr" \
    || { show_run wizard3; die "the failure does not say that the port is taken"; }
grep -q "restored /etc/" "$OUT/wizard3.stderr" \
    || { show_run wizard3; die "the failure does not say what was restored"; }
sha256sum -c --quiet "$OUT/before-rollback.sum" \
    || { show_run wizard3; die "files differ after the rollback"; }
[[ ! -e /etc/opendkim/keys/second.test ]] || die "the rolled-back run left /etc/opendkim/keys/second.test"
wait_for 20 port_open 8891 || die "the old opendkim is not back on 127.0.0.1:8891 after the rollback"
[[ -n $(opendkim_pids) ]] || die "no opendkim runs after the rollback"
/usr/sbin/sendmail -f "someone@$DOMAIN" -i "$RCPT" <<EOF || die "sendmail exited non-zero"
From: Someone <someone@$DOMAIN>
To: $RCPT@localhost
Subject: e2e-after-rollback
Message-ID: <e2e-rollback@$DOMAIN>

Signed by the old configuration, brought back after a failed run.
EOF
python3 "$E2E/verify.py" --mbox "/var/mail/$RCPT" --dns "$OUT/dns.json" \
    --domain "$DOMAIN" --selector "$SELECTOR" --timeout 30 e2e-after-rollback \
    || die "mail after the rollback is not signed and verified"
log "failed start rolled back: files identical, old opendkim back, mail signed (${T_WIZARD3} s)"

echo "e2e: sendmail signed+verified, smtp signed+verified, second run unchanged," \
     "failed start rolled back and signing again" \
     "(wizard ${T_WIZARD1} s + ${T_WIZARD2} s + ${T_WIZARD3} s; inside total $((SECONDS - T_START)) s)"
