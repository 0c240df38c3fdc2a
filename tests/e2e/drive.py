#!/usr/bin/env python3
"""Drive an interactive program through a pseudo-terminal, as a person would.

usage: drive.py TRANSCRIPT EXPECT SEND [EXPECT SEND ...] -- ARGV...

For each pair: wait (at most 60 s) until EXPECT appears in the program's
output (escape sequences removed before matching), then type SEND, where
"\\r" is the Enter key. Afterwards read to the end, write the whole session
to TRANSCRIPT (escape sequences removed), and exit with the program's exit
code. Uses only the standard library (pty), so it runs in a minimal system.
"""
import os
import pty
import re
import select
import sys
import time

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\r")


def clean(raw: bytes) -> str:
    return ANSI.sub(b"", raw).decode("utf-8", "replace")


def screen(raw: bytes, width: int = 80) -> str:
    """The session as an 80-column terminal showed it: carriage returns and
    erase-line redraw a line (spinners, prompts), long lines wrap, other
    escape sequences are dropped."""
    text = raw.decode("utf-8", "replace")
    lines, line, col, i = [], [], 0, 0
    while i < len(text):
        c = text[i]
        if c == "\x1b":
            m = re.match(r"\x1b\[([0-9;?]*)([A-Za-z])|\x1b[()][A-Z0-9]", text[i:])
            if m and m.group(2) == "K":
                line = line[:col] if m.group(1) in ("", "0") else []
            i += m.end() if m else 1
            continue
        i += 1
        if c == "\r":
            col = 0
        elif c == "\n":
            lines.append("".join(line).rstrip())
            line, col = [], 0
        elif c >= " ":
            if col >= width:
                lines.append("".join(line).rstrip())
                line, col = [], 0
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
    lines.append("".join(line).rstrip())
    return "\n".join(lines) + "\n"


def main() -> int:
    split = sys.argv.index("--")
    transcript, pairs, argv = sys.argv[1], sys.argv[2:split], sys.argv[split + 1:]
    steps = list(zip(pairs[0::2], pairs[1::2]))
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        os.execvp(argv[0], argv)
    raw = b""
    seen = 0  # how much of the cleaned output earlier expectations consumed

    def read(timeout: float) -> bool:
        nonlocal raw
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return True
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        raw += chunk
        return True

    for expect, send in steps:
        deadline = time.monotonic() + 60
        while expect not in clean(raw)[seen:]:
            if time.monotonic() > deadline or not read(0.2):
                sys.stderr.write(f"drive: never saw {expect!r}; output so far:\n{clean(raw)}\n")
                return 99
        seen = clean(raw).index(expect, seen) + len(expect)
        time.sleep(0.2)  # let the prompt finish drawing before typing
        os.write(fd, send.encode().decode("unicode_escape").encode())
    while read(60):
        pass
    _, status = os.waitpid(pid, 0)
    with open(transcript, "w") as f:
        f.write(screen(raw))
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
