#!/usr/bin/env python3
"""A tiny authoritative DNS server for the end-to-end tests (standard library
only): answers TXT and CNAME queries from a JSON file that maps each name to
either a list of TXT records, each a list of character-strings, or
{"cname": TARGET}. A TXT query for a CNAME gets the chain and the TXT records
at its end, as a server authoritative for both zones (or a resolver) gives
them. The file is read on every query, so a test can change what is served
while the server runs. Any other name: NXDOMAIN. Listens on 127.0.0.1 only.
verify.py imports resolve_txt, so that dkimpy sees what this server serves.

usage: dnsd.py PORT RECORDS.json
           serve; says "dnsd: listening on 127.0.0.1:PORT" on stderr once bound
       dnsd.py --table DNS.json [NAME...]
           print (stdout) the RECORDS.json that serves the TXT and CNAME
           records of `dkim-setup dns --format json` output DNS.json, only the
           NAMEs given if any (a NAME it does not list is an error)
"""
import json
import socket
import struct
import sys


def parse_name(packet: bytes, at: int):
    labels = []
    while packet[at] != 0:
        length = packet[at]
        labels.append(packet[at + 1:at + 1 + length].decode("ascii").lower())
        at += 1 + length
    return ".".join(labels), at + 1


def wire_name(name: str) -> bytes:
    return b"".join(bytes([len(label)]) + label.encode("ascii")
                    for label in name.split(".") if label) + b"\0"


def plain(name: str) -> str:
    return name.rstrip(".").lower()


def follow(table: dict, name: str):
    """The CNAMEs from name through table, as (owner, target) pairs, and the
    name at the end of the chain (at most 8 hops)."""
    chain, at = [], plain(name)
    for _ in range(8):
        entry = table.get(at)
        if not (isinstance(entry, dict) and "cname" in entry):
            break
        target = plain(entry["cname"])
        chain.append((at, target))
        at = target
    return chain, at


def resolve_txt(table: dict, name: str):
    """What a TXT query for name gets: (CNAME chain, TXT records at its end,
    each a list of strings); the records are None for NXDOMAIN."""
    chain, at = follow(table, name)
    entry = table.get(at)
    if entry is None:
        return chain, None
    return chain, entry if isinstance(entry, list) else []


def load(records_file: str) -> dict:
    try:
        with open(records_file) as f:
            return {plain(k): v for k, v in json.load(f).items()}
    except (OSError, ValueError):
        return {}


def answer(packet: bytes, records_file: str) -> bytes:
    ident, _flags, qdcount = struct.unpack(">HHH", packet[:6])
    name, end = parse_name(packet, 12)
    qtype, qclass = struct.unpack(">HH", packet[end:end + 4])
    question = packet[12:end + 4]
    table = load(records_file)

    def rr(owner, rtype, rdata):
        # The question's name by pointer, any other owner spelled out.
        head = b"\xc0\x0c" if owner == name else wire_name(owner)
        return head + struct.pack(">HHIH", rtype, 1, 60, len(rdata)) + rdata

    answers = []
    if name not in table:
        rcode = 3
    elif qtype == 5:  # CNAME: the first hop only
        rcode = 0
        chain, _ = follow(table, name)
        answers = [rr(owner, 5, wire_name(target)) for owner, target in chain[:1]]
    elif qtype in (16, 255):
        chain, records = resolve_txt(table, name)
        rcode = 3 if records is None else 0
        answers = [rr(owner, 5, wire_name(target)) for owner, target in chain]
        at = chain[-1][1] if chain else name
        for strings in records or []:
            rdata = b"".join(bytes([len(s)]) + s.encode() for s in strings)
            answers.append(rr(at, 16, rdata))
    else:
        rcode = 0
    header = struct.pack(">HHHHHH", ident, 0x8400 | rcode, 1, len(answers), 0, 0)
    return header + question + b"".join(answers)


def table_of(dns_json: str, names: list) -> dict:
    with open(dns_json) as f:
        records = json.load(f)
    table = {}
    for r in records:
        kind = str(r.get("type", "TXT")).upper()
        if kind == "TXT":
            table.setdefault(plain(r["name"]), []).append(r["strings"])
        elif kind == "CNAME":
            table[plain(r["name"])] = {"cname": plain(r["value"])}
    if not names:
        return table
    wanted = [plain(n) for n in names]
    missing = [n for n in wanted if n not in table]
    if missing:
        sys.exit(f"dnsd: {dns_json} has no TXT or CNAME record for {', '.join(missing)} (has: {sorted(table)})")
    return {n: table[n] for n in wanted}


def main() -> None:
    if sys.argv[1:2] == ["--table"]:
        json.dump(table_of(sys.argv[2], sys.argv[3:]), sys.stdout, indent=1)
        sys.stdout.write("\n")
        return
    port, records_file = int(sys.argv[1]), sys.argv[2]
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sys.stderr.write(f"dnsd: listening on 127.0.0.1:{port}\n")
    sys.stderr.flush()
    while True:
        packet, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(packet, records_file), peer)
        except Exception as e:  # a malformed query must not stop the server
            sys.stderr.write(f"dnsd: {e}\n")


if __name__ == "__main__":
    main()
