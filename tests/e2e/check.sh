#!/bin/bash
# Runs inside the throwaway test system: `dkim-setup check` against a real
# setup. After an unattended wizard run, a local DNS server (dnsd.py) serves
# the record `dns --format json` printed. check must pass, including the
# signing proof (a message submitted to opendkim as Postfix would, whose
# signature verifies); then it must fail with the right check when the key
# is group-readable (postfix in opendkim's group), when DNS serves another
# key, and when opendkim is stopped.
set -euo pipefail
# shellcheck source=tests/e2e/common.sh
source "$(dirname "$0")/common.sh"
T_START=$SECONDS

start_services
"$DKIM_SETUP" "${WIZARD[@]}" >"$OUT/wizard.json" 2>"$OUT/wizard.stderr" \
    || { show_run wizard; die "the wizard failed"; }
"$DKIM_SETUP" dns --format json >"$OUT/dns.json"

# Serve the printed record at 127.0.0.1:5353.
records=$OUT/records.json
python3 - "$OUT/dns.json" "$records" <<'PY'
import json, sys
recs = json.load(open(sys.argv[1]))
json.dump({r["name"]: [r["strings"]] for r in recs}, open(sys.argv[2], "w"))
PY
python3 "$E2E/dnsd.py" 5353 "$records" 2>"$OUT/dnsd.stderr" &
CHECK=("$DKIM_SETUP" check --nameserver 127.0.0.1:5353)

# run_check NAME EXPECTED_EXIT: keeps the output in $OUT/check-NAME.txt
run_check() {
    local name=$1 want=$2 rc=0
    "${CHECK[@]}" >"$OUT/check-$name.txt" 2>&1 || rc=$?
    echo "---- check ($name), exit $rc ----"
    cat "$OUT/check-$name.txt"
    ((rc == want)) || die "check ($name) exited $rc, expected $want"
}
expect_line() {  # expect_line NAME REGEX
    grep -Eq "$2" "$OUT/check-$1.txt" || die "check ($1): no line matching '$2'"
}

run_check healthy 0
expect_line healthy '^pass signing\.example\.test .* and it verifies'
expect_line healthy '^pass dns\.example\.test'
expect_line healthy '^pass service\.opendkim'

# Group-readable, with postfix in opendkim's group (the tutorials' advice for
# a unix socket): opendkim refuses such a key (platform note P2, B06).
key=/etc/opendkim/keys/$DOMAIN/$SELECTOR.private
usermod -a -G opendkim postfix
chmod 0640 "$key"
run_check key-group-readable 1
expect_line key-group-readable '^FAIL key\.example\.test .*readable by its group, which has members other than opendkim'
expect_line key-group-readable '^FAIL signing\.example\.test .*tempfail'
chmod 0600 "$key"
gpasswd -d postfix opendkim >/dev/null

python3 - "$records" <<'PY'
import json, sys
table = json.load(open(sys.argv[1]))
for name, recs in table.items():
    s = recs[0]
    # another key: change characters well inside the base64 of p=
    joined = "".join(s)
    at = joined.index("p=") + 60
    joined = joined[:at] + ("A" if joined[at] != "A" else "B") + joined[at + 1:]
    table[name] = [[joined[i:i + 255] for i in range(0, len(joined), 255)]]
json.dump(table, open(sys.argv[1], "w"))
PY
run_check dns-mismatch 1
expect_line dns-mismatch '^FAIL dns\.example\.test .*does not match'

service opendkim stop >/dev/null 2>&1 || true
wait_for 20 test -z "$(opendkim_pids)" || die "opendkim did not stop"
run_check opendkim-stopped 1
expect_line opendkim-stopped '^FAIL service\.opendkim'

echo "e2e: check passes on a healthy setup (signing proof + DNS) and fails on a group-readable key," \
     "a mismatched DNS record and a stopped opendkim (inside total $((SECONDS - T_START)) s)"
