#!/usr/bin/env python3
"""A tiny authoritative DNS server for the end-to-end tests (standard library
only): answers TXT queries from a JSON file that maps names to a list of
records, each a list of character-strings. The file is read on every query,
so a test can change what is served while the server runs. Anything else:
NXDOMAIN. Listens on 127.0.0.1 only.

usage: dnsd.py PORT RECORDS.json
           serve; says "dnsd: listening on 127.0.0.1:PORT" on stderr once bound
       dnsd.py --table DNS.json [NAME...]
           print (stdout) the RECORDS.json that serves the TXT records of
           `dkim-setup dns --format json` output DNS.json, only the NAMEs given
           if any (a NAME it does not list is an error)
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


def answer(packet: bytes, records_file: str) -> bytes:
    ident, _flags, qdcount = struct.unpack(">HHH", packet[:6])
    name, end = parse_name(packet, 12)
    qtype, qclass = struct.unpack(">HH", packet[end:end + 4])
    question = packet[12:end + 4]
    try:
        with open(records_file) as f:
            table = json.load(f)
    except (OSError, ValueError):
        table = {}
    records = table.get(name) if qtype in (16, 255) else None
    rcode = 0 if name in table else 3
    answers = b""
    for strings in records or []:
        rdata = b"".join(bytes([len(s)]) + s.encode() for s in strings)
        answers += b"\xc0\x0c" + struct.pack(">HHIH", 16, 1, 60, len(rdata)) + rdata
    count = len(records or [])
    header = struct.pack(">HHHHHH", ident, 0x8400 | rcode, 1, count, 0, 0)
    return header + question + answers


def table_of(dns_json: str, names: list) -> dict:
    with open(dns_json) as f:
        records = json.load(f)
    table = {}
    for r in records:
        if str(r.get("type", "TXT")).upper() == "TXT":
            table.setdefault(r["name"].rstrip(".").lower(), []).append(r["strings"])
    if not names:
        return table
    wanted = [n.rstrip(".").lower() for n in names]
    missing = [n for n in wanted if n not in table]
    if missing:
        sys.exit(f"dnsd: {dns_json} has no TXT record for {', '.join(missing)} (has: {sorted(table)})")
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
