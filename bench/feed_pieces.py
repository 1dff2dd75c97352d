#!/usr/bin/env python3
"""Replay an existing corpus into a target directory in K random pieces, cut mid-line.

Usage
-----
    feed_pieces.py --corpus SRC --target DST --pieces K --piece-seed S
                   [--hook CMD] [--whole-lines] [--json-whole] [--quiet]

Every regular file of SRC (e.g. a gen_corpus.py output) is split at K-1 cut points
drawn from random.Random(S) — anywhere in its bytes, so lines (and UTF-8
sequences) are torn, or only after a newline with --whole-lines. Cut points may
coincide, so a file can receive nothing in some rounds, and half the files get
their first bytes in a random later round (sessions start at different times).
Round i (1..K) appends
piece i of every file, in a shuffled file order, creating files and directories
when their first bytes arrive (an empty source file is created in round 1); then
the hook runs. After round K, DST holds byte-for-byte copies of SRC's files
(mtimes are those of the writes, not SRC's).

--hook CMD     run through /bin/sh after every round, the last one included, with
               FEED_PIECE=i, FEED_PIECES=K, FEED_TARGET=DST, FEED_LAST=0|1 in its
               environment; a non-zero exit stops the feed with that status. A
               test feeding a running daemon passes e.g. --hook "etlctl sync".
--whole-lines  cut only after '\\n' (a file without newline stays whole).
--json-whole   Gemini-style whole-file .json sessions are not torn: each .json file
               is written whole, atomically (temp file + rename), in one round.
               Without it a .json file grows by appended bytes, so a reader sees the
               mid-write states a rewrite can show (it must keep what it last read).

DST must be absent or empty. Deterministic for (SRC bytes, K, S, flags). Also
importable: feed(src, dst, pieces, seed, hook=None, whole_lines=False,
json_whole=False).
"""

import argparse
import os
import random
import subprocess
import sys


def list_files(root):
    out = []
    for dp, dns, fns in os.walk(root):
        for fn in fns:
            full = os.path.join(dp, fn)
            if os.path.isfile(full) and not os.path.islink(full):
                out.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return sorted(out)


def cut_points(rng, data, pieces, whole_lines):
    """K+1 sorted offsets from 0 to len(data); half the files start in a later round."""
    n = len(data)
    late = 0 if rng.random() < 0.5 else rng.randrange(pieces)
    k = pieces - 1 - late
    if whole_lines:
        cands = [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < n]
        inner = sorted(rng.choice(cands) for _ in range(k)) if cands else [n] * k
    else:
        inner = sorted(rng.randint(0, n) for _ in range(k))
    return [0] + [0] * late + inner + [n]


def feed(src, dst, pieces, seed, hook=None, whole_lines=False, json_whole=False, log=None):
    if pieces < 1:
        raise ValueError("pieces must be >= 1")
    if os.path.exists(dst) and os.listdir(dst):
        raise ValueError("%s exists and is not empty" % dst)
    rng = random.Random(seed)
    files = list_files(src)
    plan = {}
    for rel in files:
        with open(os.path.join(src, *rel.split("/")), "rb") as f:
            data = f.read()
        if json_whole and rel.endswith(".json"):
            r = rng.randrange(pieces)
            plan[rel] = (data, None, r)
        else:
            plan[rel] = (data, cut_points(rng, data, pieces, whole_lines), None)
    created = set()
    for i in range(pieces):
        order = list(files)
        rng.shuffle(order)
        written = 0
        for rel in order:
            data, cuts, whole_round = plan[rel]
            full = os.path.join(dst, *rel.split("/"))
            if cuts is None:
                if i != whole_round:
                    continue
                os.makedirs(os.path.dirname(full), exist_ok=True)
                tmp = os.path.join(os.path.dirname(full), ".%s.feed-tmp" % os.path.basename(full))
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, full)
                written += len(data)
                continue
            part = data[cuts[i]:cuts[i + 1]]
            if not part and (rel in created or (len(data) > 0 or i > 0)):
                continue
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "ab") as f:
                f.write(part)
            created.add(rel)
            written += len(part)
        if log:
            log("feed_pieces: piece %d/%d: %d bytes\n" % (i + 1, pieces, written))
        if hook:
            env = dict(os.environ, FEED_PIECE=str(i + 1), FEED_PIECES=str(pieces), FEED_TARGET=dst,
                       FEED_LAST="1" if i == pieces - 1 else "0")
            rc = subprocess.call(hook, shell=True, env=env)
            if rc != 0:
                return rc
    return 0


def main():
    ap = argparse.ArgumentParser(description="Replay a corpus in K random pieces.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--pieces", type=int, required=True)
    ap.add_argument("--piece-seed", type=int, required=True)
    ap.add_argument("--hook")
    ap.add_argument("--whole-lines", action="store_true")
    ap.add_argument("--json-whole", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    try:
        rc = feed(a.corpus, a.target, a.pieces, a.piece_seed, a.hook, a.whole_lines, a.json_whole,
                  None if a.quiet else sys.stderr.write)
    except ValueError as e:
        sys.exit("feed_pieces: %s" % e)
    if rc:
        sys.stderr.write("feed_pieces: hook failed with status %d\n" % rc)
    sys.exit(rc)


if __name__ == "__main__":
    main()
