#!/usr/bin/python3
"""Checks of dkim-setup's JSON output (spec: "JSON (--json)"), run inside the test tree.

  checks.py first-run WIZARD.json          one object, "changed": true, steps present
  checks.py records WIZARD.json DNS.json   `dns --format json` is a list of
                                           {name, type, value, strings} and agrees
                                           with the wizard's dns_records
  checks.py second-run WIZARD.json         "changed": false, every file/key/dir step
                                           "unchanged", no service step or service/package
                                           command run

Prints what is wrong and exits 1; exits 0 when all is well.
"""

import json
import re
import sys


def load(path, what):
    text = open(path, encoding="utf-8", errors="replace").read()
    if not text.strip():
        fail(f"{what}: printed nothing on stdout (expected JSON)")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        fail(f"{what}: stdout is not one JSON document ({e}); it starts: {text[:500]!r}")


def fail(msg):
    print(f"check: {msg}")
    sys.exit(1)


def first_run(path):
    doc = load(path, "wizard run 1")
    if not isinstance(doc, dict):
        fail(f"wizard run 1: JSON is not an object: {str(doc)[:300]}")
    if doc.get("changed") is not True:
        fail(f'wizard run 1: "changed" is {doc.get("changed")!r}, expected true on a fresh system')
    if not isinstance(doc.get("steps"), list) or not doc["steps"]:
        fail("wizard run 1: no \"steps\" list")


def norm(rec):
    return (str(rec.get("name", "")).rstrip(".").lower(), str(rec.get("type", "")).upper(), rec.get("value"))


def records(wizard_path, dns_path):
    wiz = load(wizard_path, "wizard run 1").get("dns_records") or []
    dns = load(dns_path, "dns --format json")
    if not isinstance(dns, list) or not dns:
        fail(f"dns --format json: expected a non-empty list, got {str(dns)[:300]}")
    for r in dns:
        missing = [k for k in ("name", "type", "value", "strings") if k not in r]
        if missing:
            fail(f"dns --format json: record lacks {missing}: {r}")
        if "".join(r["strings"]) != r["value"]:
            fail(f"dns --format json: strings do not join to value: {r}")
        long = [s for s in r["strings"] if len(s.encode()) > 255]
        if long:
            fail(f"dns --format json: a string is over 255 bytes: {long[0][:60]}...")
    if wiz and sorted(map(norm, wiz)) != sorted(map(norm, dns)):
        fail(f"wizard dns_records and dns --format json differ:\n  wizard: {wiz}\n  dns:    {dns}")


# A command step that was run and touches a service or installs something.
SERVICE_WORD = re.compile(
    r"^(start|restart|reload|force-reload|stop|try-restart|reload-or-restart|enable|install|"
    r"-HUP|-USR1|-TERM)$"
)
SERVICE_PROG = re.compile(r"(^|/)(apt-get|apt|dnf|yum|kill|pkill|systemctl|service|invoke-rc\.d)$")


def second_run(path):
    doc = load(path, "wizard run 2")
    problems = []
    if doc.get("changed") is not False:
        problems.append(f'"changed" is {doc.get("changed")!r}, expected false')
    for step in doc.get("steps", []):
        kind = step.get("kind")
        argv = [str(a) for a in step.get("argv", [])]
        ran = step.get("status", "done") == "done"
        if kind == "service":
            # e.g. {"kind": "service", "name": "opendkim", "action": "start", "argv": [...], "status": "done"}
            if ran:
                problems.append(f"service {step.get('name')} {step.get('action')}: {' '.join(argv)}")
        elif kind == "command":
            if ran and argv and (SERVICE_PROG.search(argv[0]) or any(SERVICE_WORD.match(a) for a in argv[1:])):
                problems.append(f"command run: {' '.join(argv)}")
        elif step.get("action", "unchanged") != "unchanged":
            # file, key, dir, and any kind added later that changes the system
            problems.append(f"{kind} step {step.get('path')}: action {step.get('action')!r}, expected 'unchanged'")
    for p in problems:
        print(f"check: second run: {p}")
    if problems:
        sys.exit(1)


def main():
    cmd, *args = sys.argv[1:]
    {"first-run": first_run, "records": records, "second-run": second_run}[cmd](*args)


if __name__ == "__main__":
    main()
