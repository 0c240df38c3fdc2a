#!/usr/bin/python3
"""Print a snapshot of a directory tree, so that two snapshots are equal
exactly when the tree was left as it was: one line per entry, sorted, with
path, type, mode, uid, gid and the sha256 of a file's bytes (a symlink's
target). Used to prove that a failed or reverted dkim-setup run leaves /etc
byte for byte, mode and owner as it found it.

usage: snapshot.py DIR...   (symlinks are not followed; nothing is skipped)
"""

import hashlib
import os
import stat
import sys

TYPES = [(stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "link"),
         (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"),
         (stat.S_ISCHR, "char"), (stat.S_ISBLK, "block")]


def entry(path):
    st = os.lstat(path)
    kind = next(name for test, name in TYPES if test(st.st_mode))
    if kind == "file":
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 16), b""):
                h.update(chunk)
        what = h.hexdigest()
    elif kind == "link":
        what = "-> " + os.readlink(path)
    else:
        what = "-"
    return f"{path}\t{kind}\t{stat.S_IMODE(st.st_mode):04o}\t{st.st_uid}\t{st.st_gid}\t{what}"


def main():
    lines = []
    for top in sys.argv[1:]:
        lines.append(entry(top))
        for base, dirs, files in os.walk(top):
            for name in dirs + files:
                lines.append(entry(os.path.join(base, name)))
    for line in sorted(lines):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
