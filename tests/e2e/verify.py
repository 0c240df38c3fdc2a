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
  --expect-switch OLD NEW
                     with --ledger and --window: the tool switched signing
                     from selector OLD to NEW while it ran. Every submission
                     that ended before START must carry s=OLD, every one that
                     began after END s=NEW (those in between may carry either),
                     both must occur, and the last line is
                       rotate: sent N, delivered D, s=OLD K0, s=NEW K1, unsigned U, lost L
  --zone FILE        instead of --dns: a dnsd.py RECORDS.json (TXT records and
                     CNAMEs); the dnsfunc follows the CNAME chain as DNS does
                     (dnsd.resolve_txt), so what is verified is what dnsd.py
                     serves.
  --selector and --domain may be repeated: a signature with any of the
  selectors, by the domain of the message's From (one of the domains), counts
  as ours; each selector's record of each domain must be in --dns or --zone.
"""

import argparse
import email
import email.utils
import json
import mailbox
import os
import sys
import time

import dkim

import dnsd


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


def check_signature(raw, dnsfunc, domains, selectors):
    """(verified, description, selector) of a message that has a
    DKIM-Signature: it verifies with dkimpy, and it is the signature of one of
    DOMAINS with one of SELECTORS. selector is the s= tag (str, or None)."""
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
    selector = sig[b"s"].decode() if b"s" in sig else None
    sender = email.utils.parseaddr(email.message_from_bytes(headers(raw) + b"\n\n").get("From", ""))[1]
    from_domain = sender.rpartition("@")[2].lower()
    signer = sig.get(b"d", b"").decode().lower()
    ours = signer in domains and signer == from_domain and selector in selectors
    return bool(good) and ours, f"{desc}; dkimpy verify: {good}", selector


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
    selector_of = {}  # marker -> s= of its verified signature
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
        good, desc, selector = check_signature(raw, dnsfunc, args.domain, args.selector)
        if good:
            verified += 1
            selector_of[e["marker"]] = selector
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
    if args.expect_switch:
        bad = switch_report(args, accepted, selector_of, delivered, unsigned, lost, len(sent)) or bad
    return 1 if bad else 0


def switch_report(args, accepted, selector_of, delivered, unsigned, lost, sent):
    """The --expect-switch checks and lines; True when one failed."""
    old, new = args.expect_switch
    start, end = args.window
    bad = False
    phases = {"before": [], "during": [], "after": []}
    for e in accepted:
        phase = "before" if e["end"] < start else "after" if e["start"] > end else "during"
        phases[phase].append(e)
    for phase, want in (("before", old), ("after", new)):
        for e in phases[phase]:
            got = selector_of.get(e["marker"])
            if got is not None and got != want:
                bad = True
                print(f"verify: {e['marker']}: submitted {phase} the switch "
                      f"({e['via']}), signed with s={got}, expected s={want}")

    def counts(entries):
        return ", ".join(f"s={sel} {sum(1 for e in entries if selector_of.get(e['marker']) == sel)}"
                         for sel in (old, new))
    for phase in ("before", "during", "after"):
        print(f"rotate: {len(phases[phase])} submitted {phase} the switch ({counts(phases[phase])})")
    totals = {sel: sum(1 for s in selector_of.values() if s == sel) for sel in (old, new)}
    for sel, n in totals.items():
        if n == 0:
            bad = True
            print(f"verify: no delivered message carries s={sel}: the switch was not seen")
    print(f"rotate: sent {sent}, delivered {delivered}, s={old} {totals[old]}, "
          f"s={new} {totals[new]}, unsigned {unsigned}, lost {lost}")
    return bad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mbox", required=True)
    ap.add_argument("--dns", help="output of `dkim-setup dns --format json` (optional with --delivered-only)")
    ap.add_argument("--zone", help="a dnsd.py RECORDS.json, CNAMEs followed (instead of --dns)")
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--domain", action="append")
    ap.add_argument("--selector", action="append")
    ap.add_argument("--delivered-only", action="store_true")
    ap.add_argument("--ledger")
    ap.add_argument("--window", nargs=2, type=float, metavar=("START", "END"))
    ap.add_argument("--expect-switch", nargs=2, metavar=("OLD", "NEW"))
    ap.add_argument("markers", nargs="*")
    args = ap.parse_args()
    args.domain = [d.lower() for d in args.domain or ["example.test"]]
    args.selector = args.selector or ["key"]
    if args.expect_switch and not (args.ledger and args.window):
        ap.error("--expect-switch needs --ledger and --window")
    if args.expect_switch:
        args.selector = list(dict.fromkeys(args.selector + args.expect_switch))
    if bool(args.markers) == bool(args.ledger):
        ap.error("give either MARKERs or --ledger")
    if args.dns and args.zone:
        ap.error("give --dns or --zone, not both")
    if not (args.dns or args.zone) and not args.delivered_only:
        ap.error("--dns or --zone is required unless --delivered-only")

    cnames = {}  # name -> "name -> target -> ..." for the names behind a CNAME
    if args.zone:
        zone = dnsd.load(args.zone)

        def lookup(name):
            chain, txt = dnsd.resolve_txt(zone, name)
            if chain:
                cnames[norm(name)] = " -> ".join([chain[0][0]] + [t for _, t in chain])
            return "".join(txt[0]).encode("ascii") if txt else None
    else:
        records = load_txt_records(args.dns) if args.dns else {}

        def lookup(name):
            return records.get(norm(name))
    for selector in args.selector:
        for domain in args.domain:
            want_name = f"{selector}._domainkey.{domain}"
            if (args.dns or args.zone) and lookup(want_name) is None:
                print(f"verify: {args.dns or args.zone} has no TXT record for {want_name}")
                return 1

    looked_up = []

    def dnsfunc(name, timeout=5):
        looked_up.append(norm(name))
        return lookup(norm(name))

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
        looked_up.clear()
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
        good, desc, _ = check_signature(raw, dnsfunc, args.domain, args.selector)
        if args.delivered_only:
            print(f"verify: {marker}: delivered, with a DKIM-Signature ({desc})")
        elif good:
            via = "".join(f"; key at {cnames[n]}" for n in dict.fromkeys(looked_up) if n in cnames)
            print(f"verify: {marker}: DKIM-Signature present ({desc}{via})")
        else:
            ok = False
            print(f"verify: {marker}: DKIM verification FAILED ({desc}); "
                  f"dns names asked: {looked_up}")
            print("---- headers ----")
            print(headers(raw).decode("utf-8", "replace"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
