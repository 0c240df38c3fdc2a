#!/usr/bin/python3
"""Wait for the test mails in an mbox, then DKIM-verify each one with dkimpy.

Runs inside the test tree (python3-dkim is installed there). DNS is not used:
the dnsfunc answers from the records that `dkim-setup dns --format json`
printed, so what is verified is exactly what the tool tells the admin to publish.

usage: verify.py --mbox /var/mail/USER --dns dns.json --timeout 30 MARKER...
Each MARKER must appear in the Subject of exactly one delivered message.
Exit 0 when every marked message has a DKIM-Signature that verifies; 1 otherwise.

  --delivered-only   each MARKER must be delivered once; a signature is not
                     required (it is reported). For the checks that Postfix
                     still delivers after a rollback or a revert.
  --ledger FILE      instead of MARKERs: every submission that sender.py
                     recorded in FILE. Waits (up to --timeout) for every
                     accepted one, then prints what happened to each that went
                     wrong and, last, one line
                       outage: sent N, refused R, delivered D, signed S, verified V, lost L, unsigned U
                     Exit 1 unless R, L and U are 0, every signed one verifies
                     and none is delivered twice.
  --window START END with --ledger: also report the submissions made while
                     the tool ran (epoch seconds).
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


def headers(raw):
    return raw.split(b"\n\n", 1)[0]


def has_signature(raw):
    return b"\nDKIM-Signature:" in b"\n" + headers(raw)


def check_signature(raw, dnsfunc, domain, selector):
    """(verified, description) of a message that has a DKIM-Signature: it
    verifies with dkimpy, and it is the signature of DOMAIN with SELECTOR."""
    d = dkim.DKIM(raw)
    try:
        good = d.verify(dnsfunc=dnsfunc)
    except Exception as e:  # a malformed record makes dkimpy raise, not return False
        good = False
        print(f"verify: dkimpy raised {type(e).__name__}: {e}")
    sig = d.signature_fields if hasattr(d, "signature_fields") else {}
    desc = " ".join(
        f"{k.decode()}={sig[k].decode()}" for k in (b"d", b"s", b"a") if k in sig
    )
    ours = sig.get(b"d", b"").lower() == domain.encode() and sig.get(b"s") == selector.encode()
    return bool(good) and ours, f"{desc}; dkimpy verify: {good}"


def by_subject(mbox_path):
    """Subject -> list of raw messages (bytes) delivered to the mbox."""
    found = {}
    if not os.path.exists(mbox_path):
        return found
    box = mailbox.mbox(mbox_path, create=False)
    try:
        for key in box.keys():
            raw = box.get_bytes(key)
            found.setdefault(str(box[key].get("Subject", "")).strip(), []).append(raw)
    finally:
        box.close()
    return found


def ledger_mode(args, dnsfunc):
    with open(args.ledger, encoding="utf-8") as f:
        sent = [json.loads(line) for line in f if line.strip()]
    refused = [e for e in sent if not e["ok"]]
    accepted = [e for e in sent if e["ok"]]
    for e in refused:
        print(f"verify: {e['marker']}: REFUSED at submission: {e['error']}")

    deadline = time.monotonic() + args.timeout
    while True:
        found = by_subject(args.mbox)
        if all(e["marker"] in found for e in accepted) or time.monotonic() >= deadline:
            break
        time.sleep(0.5)

    delivered = signed = verified = duplicated = 0
    lost = unsigned = 0
    for e in accepted:
        msgs = found.get(e["marker"], [])
        if not msgs:
            lost += 1
            print(f"verify: {e['marker']}: accepted but NOT delivered within {args.timeout:.0f} s")
            continue
        delivered += 1
        if len(msgs) > 1:
            duplicated += 1
            print(f"verify: {e['marker']}: {len(msgs)} copies delivered (expected 1)")
        raw = msgs[0]
        if not has_signature(raw):
            unsigned += 1
            print(f"verify: {e['marker']}: delivered WITHOUT a DKIM-Signature header")
            continue
        signed += 1
        good, desc = check_signature(raw, dnsfunc, args.domain, args.selector)
        if good:
            verified += 1
        else:
            print(f"verify: {e['marker']}: DKIM verification FAILED ({desc})")
    late = [e["marker"] for e in refused if e["marker"] in found]
    if late:
        print(f"verify: refused at submission but delivered anyway: {', '.join(late)}")

    if args.window:
        start, end = args.window
        during = [e for e in sent if e["start"] <= end and e["end"] >= start]
        vias = {v: sum(1 for e in during if e["via"] == v) for v in ("smtp", "sendmail")}
        slowest = max((e["end"] - e["start"] for e in sent), default=0.0)
        print(f"outage: {len(during)} submissions (smtp {vias['smtp']}, sendmail {vias['sendmail']}) "
              f"while the tool ran for {end - start:.1f} s; slowest submission {slowest:.2f} s")
    print(f"outage: sent {len(sent)}, refused {len(refused)}, delivered {delivered}, "
          f"signed {signed}, verified {verified}, lost {lost}, unsigned {unsigned}")
    bad = refused or lost or unsigned or verified != signed or duplicated or not sent
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbox", required=True)
    ap.add_argument("--dns", help="output of `dkim-setup dns --format json` (optional with --delivered-only)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--selector", default="key")
    ap.add_argument("--delivered-only", action="store_true")
    ap.add_argument("--ledger")
    ap.add_argument("--window", nargs=2, type=float, metavar=("START", "END"))
    ap.add_argument("markers", nargs="*")
    args = ap.parse_args()
    if bool(args.markers) == bool(args.ledger):
        ap.error("give either MARKERs or --ledger")
    if not args.dns and not args.delivered_only:
        ap.error("--dns is required unless --delivered-only")

    records = load_txt_records(args.dns) if args.dns else {}
    want_name = f"{args.selector}._domainkey.{args.domain}"
    if args.dns and want_name not in records:
        print(f"verify: {args.dns} has no TXT record for {want_name} (has: {sorted(records)})")
        return 1

    looked_up = []

    def dnsfunc(name, timeout=5):
        looked_up.append(norm(name))
        return records.get(norm(name))

    if args.ledger:
        return ledger_mode(args, dnsfunc)

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
        if not has_signature(raw):
            if args.delivered_only:
                print(f"verify: {marker}: delivered, without a DKIM-Signature")
                continue
            print(f"verify: {marker}: delivered WITHOUT a DKIM-Signature header")
            print("---- headers ----")
            print(headers(raw).decode("utf-8", "replace"))
            ok = False
            continue
        good, desc = check_signature(raw, dnsfunc, args.domain, args.selector)
        if args.delivered_only:
            print(f"verify: {marker}: delivered, with a DKIM-Signature ({desc})")
        elif good:
            print(f"verify: {marker}: DKIM-Signature present ({desc})")
        else:
            ok = False
            print(f"verify: {marker}: DKIM verification FAILED ({desc}); "
                  f"dns names asked: {looked_up}")
            print("---- headers ----")
            print(headers(raw).decode("utf-8", "replace"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
