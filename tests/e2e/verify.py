#!/usr/bin/python3
"""Wait for the test mails in an mbox, then DKIM-verify each one with dkimpy.

Runs inside the test tree (python3-dkim is installed there). DNS is not used:
the dnsfunc answers from the records that `dkim-setup dns --format json`
printed, so what is verified is exactly what the tool tells the admin to publish.

usage: verify.py --mbox /var/mail/USER --dns dns.json --timeout 30 MARKER...
Each MARKER must appear in the Subject of exactly one delivered message.
Exit 0 when every marked message has a DKIM-Signature that verifies; 1 otherwise.
"""

import argparse
import json
import mailbox
import os
import sys
import time

import dkim


def norm(name):
    if isinstance(name, bytes):
        name = name.decode("ascii", "replace")
    return name.strip().rstrip(".").lower()


def load_txt_records(path):
    """name -> TXT value (bytes) from `dns --format json`: a list of
    {name, type, value, strings}. A bare object or {"records": [...]} is also
    accepted so that a small schema slip is reported by the check, not a crash."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = data.get("records") or data.get("dns_records") or [data]
    records = {}
    for rec in data:
        if str(rec.get("type", "TXT")).upper() != "TXT":
            continue
        value = rec.get("value")
        if value is None and rec.get("strings"):
            value = "".join(rec["strings"])
        records[norm(rec["name"])] = value.encode("ascii")
    return records


def find_messages(mbox_path, markers):
    """marker -> list of raw messages (bytes) whose Subject contains it."""
    found = {m: [] for m in markers}
    if not os.path.exists(mbox_path):
        return found
    box = mailbox.mbox(mbox_path, create=False)
    try:
        for key in box.keys():
            raw = box.get_bytes(key)
            subject = str(box[key].get("Subject", ""))
            for m in markers:
                if m in subject:
                    found[m].append(raw)
    finally:
        box.close()
    return found


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbox", required=True)
    ap.add_argument("--dns", required=True, help="output of `dkim-setup dns --format json`")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--selector", default="key")
    ap.add_argument("markers", nargs="+")
    args = ap.parse_args()

    records = load_txt_records(args.dns)
    want_name = f"{args.selector}._domainkey.{args.domain}"
    if want_name not in records:
        print(f"verify: {args.dns} has no TXT record for {want_name} (has: {sorted(records)})")
        return 1

    looked_up = []

    def dnsfunc(name, timeout=5):
        looked_up.append(norm(name))
        return records.get(norm(name))

    # Poll (bounded) until every marker has arrived.
    deadline = time.monotonic() + args.timeout
    while True:
        found = find_messages(args.mbox, args.markers)
        if all(found.values()) or time.monotonic() >= deadline:
            break
        time.sleep(0.25)

    ok = True
    for marker in args.markers:
        msgs = found[marker]
        if not msgs:
            print(f"verify: {marker}: NOT delivered to {args.mbox} within {args.timeout:.0f} s")
            ok = False
            continue
        if len(msgs) > 1:
            print(f"verify: {marker}: {len(msgs)} copies delivered (expected 1)")
            ok = False
        raw = msgs[0]
        if b"\nDKIM-Signature:" not in b"\n" + raw.split(b"\n\n", 1)[0]:
            print(f"verify: {marker}: delivered WITHOUT a DKIM-Signature header")
            print("---- headers ----")
            print(raw.split(b"\n\n", 1)[0].decode("utf-8", "replace"))
            ok = False
            continue
        d = dkim.DKIM(raw)
        try:
            good = d.verify(dnsfunc=dnsfunc)
        except Exception as e:  # a malformed record makes dkimpy raise, not return False
            good = False
            print(f"verify: {marker}: dkimpy raised {type(e).__name__}: {e}")
        sig = d.signature_fields if hasattr(d, "signature_fields") else {}
        desc = " ".join(
            f"{k.decode()}={sig[k].decode()}" for k in (b"d", b"s", b"a") if k in sig
        )
        if good and sig.get(b"d", b"").lower() == args.domain.encode() and sig.get(b"s") == args.selector.encode():
            print(f"verify: {marker}: DKIM-Signature present ({desc}), dkimpy verify: True")
        else:
            ok = False
            print(f"verify: {marker}: DKIM verification FAILED ({desc}); dkimpy verify: {good}; "
                  f"dns names asked: {looked_up}")
            print("---- headers ----")
            print(raw.split(b"\n\n", 1)[0].decode("utf-8", "replace"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
