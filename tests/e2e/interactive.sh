#!/bin/bash
# Runs inside the throwaway test system: what a person does at a terminal on
# a fresh Debian 12 server with Postfix. `dkim-setup wizard` with no flags,
# in a pseudo-terminal: type one domain, press Enter at every other question
# and at the confirmation. Then mail must be signed and verify against the
# record the final screen printed.
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS

start_services

t=$SECONDS
set +e
python3 "$E2E/drive.py" "$OUT/transcript.txt" \
    "Domains to sign for" "$DOMAIN\r" \
    "Selector" "\r" \
    "Key size" "\r" \
    "Other hosts or networks" "\r" \
    "Apply these changes?" "\r" \
    -- "$DKIM_SETUP" wizard
rc=$?
set -e
T_WIZARD=$((SECONDS - t))
cat "$OUT/transcript.txt" >&2 || true
((rc == 0)) || die "the interactive wizard exited $rc"
grep -q "DKIM signing is set up for $DOMAIN." "$OUT/transcript.txt" \
    || die "the final screen does not say that signing is set up"
grep -q "name:  $SELECTOR._domainkey.$DOMAIN" "$OUT/transcript.txt" \
    || die "the final screen does not show the DNS record"

"$DKIM_SETUP" dns --format json >"$OUT/dns.json"
# The record on the final screen is the one dns prints.
python3 - "$OUT/transcript.txt" "$OUT/dns.json" <<'PY' || die "the screen's record differs from dns"
import json, sys
screen = open(sys.argv[1]).read().replace("\n", "")  # undo the 80-column wrap
value = json.load(open(sys.argv[2]))[0]["value"]
assert f"value: {value}" in screen, "record on screen != dns --format json"
PY

/usr/sbin/sendmail -f "someone@$DOMAIN" -i "$RCPT" <<MAIL || die "sendmail exited non-zero"
From: Someone <someone@$DOMAIN>
To: $RCPT@localhost
Subject: e2e-interactive
Message-ID: <e2e-interactive@$DOMAIN>

Signed after an interactive setup.
MAIL
python3 "$E2E/verify.py" --mbox "/var/mail/$RCPT" --dns "$OUT/dns.json" \
    --domain "$DOMAIN" --selector "$SELECTOR" --timeout 30 e2e-interactive \
    || die "mail after the interactive setup is not signed and verified"

echo "e2e: interactive wizard (one domain typed, Enter everywhere else) signed+verified" \
     "(wizard ${T_WIZARD} s; inside total $((SECONDS - T_START)) s)"
