#!/usr/bin/python3
"""Submit test mail the two ways local mail enters Postfix, and record every
submission, so that a test can prove that no mail was refused, lost or left
unsigned while dkim-setup changed the running system.

Runs inside the test tree. Every message is from someone@DOMAIN to RCPT and
carries its marker as Subject and in its Message-ID.

  sender.py once smtp|sendmail MARKER
      one message; exit 1 (with the reason) if the submission failed
  sender.py stream --ledger FILE --stop FILE [--every 0.1] [--prefix outage]
      one message every EVERY seconds, alternating SMTP to 127.0.0.1:25
      (smtpd_milters) and /usr/sbin/sendmail (non_smtpd_milters), each on its
      own connection or process, until FILE --stop exists. Each submission is
      one JSON line in the ledger:
        {"seq", "marker", "via", "start", "end", "ok", "error"}
      An SMTP 4xx/5xx (or any SMTP or connection error) and a non-zero
      sendmail exit are failures ("ok": false, "error": what was said).
"""

import argparse
import json
import os
import smtplib
import subprocess
import sys
import time

SENDMAIL = "/usr/sbin/sendmail"


def message(domain, rcpt, marker, via, crlf):
    nl = "\r\n" if crlf else "\n"
    lines = [
        f"From: Someone <someone@{domain}>",
        f"To: {rcpt}@localhost",
        f"Subject: {marker}",
        f"Message-ID: <{marker}@{domain}>",
        "",
        f"Test mail {marker}, submitted through {via}.",
        "",
    ]
    return nl.join(lines)


def submit(via, marker, domain, rcpt):
    """Submit one message; returns None on success, else what went wrong."""
    sender = f"someone@{domain}"
    try:
        if via == "smtp":
            with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
                refused = s.sendmail(sender, [f"{rcpt}@localhost"],
                                     message(domain, rcpt, marker, via, True))
            if refused:
                return f"recipients refused: {refused}"
            return None
        out = subprocess.run(
            [SENDMAIL, "-f", sender, "-i", rcpt],
            input=message(domain, rcpt, marker, via, False).encode(),
            capture_output=True, timeout=30, check=False,
        )
        if out.returncode != 0:
            said = (out.stderr or out.stdout).decode("utf-8", "replace").strip()
            return f"sendmail exit {out.returncode}: {said}"
        return None
    except smtplib.SMTPResponseException as e:
        text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else e.smtp_error
        return f"SMTP {e.smtp_code} {text}"
    except (smtplib.SMTPException, OSError, subprocess.SubprocessError) as e:
        return f"{type(e).__name__}: {e}"


def stream(args):
    seq = 0
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    with open(args.ledger, "a", encoding="utf-8") as ledger:
        while not os.path.exists(args.stop):
            if time.monotonic() > deadline:
                print(f"sender: no stop file after {args.max_seconds:.0f} s; stopping", file=sys.stderr)
                return 1
            # Fixed ticks: a slow submission is followed at once by the next one.
            wait = t0 + seq * args.every - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            seq += 1
            via = "smtp" if seq % 2 else "sendmail"
            marker = f"{args.prefix}-{seq:05d}-{via}"
            start = time.time()
            error = submit(via, marker, args.domain, args.rcpt)
            entry = {"seq": seq, "marker": marker, "via": via, "start": start,
                     "end": time.time(), "ok": error is None, "error": error}
            ledger.write(json.dumps(entry) + "\n")
            ledger.flush()
    print(f"sender: {seq} submissions", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--rcpt", default="e2e")
    sub = ap.add_subparsers(dest="cmd", required=True)
    once = sub.add_parser("once")
    once.add_argument("via", choices=["smtp", "sendmail"])
    once.add_argument("marker")
    st = sub.add_parser("stream")
    st.add_argument("--ledger", required=True)
    st.add_argument("--stop", required=True, help="stop when this file exists")
    st.add_argument("--every", type=float, default=0.1)
    st.add_argument("--prefix", default="outage")
    st.add_argument("--max-seconds", type=float, default=240.0)
    args = ap.parse_args()
    if args.cmd == "once":
        error = submit(args.via, args.marker, args.domain, args.rcpt)
        if error:
            print(f"sender: {args.marker} via {args.via}: {error}")
            return 1
        return 0
    return stream(args)


if __name__ == "__main__":
    sys.exit(main())
