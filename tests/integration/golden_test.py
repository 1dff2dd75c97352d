#!/usr/bin/env python3
"""Our totals against ccusage 20.0.24's, through the real binaries.

For each golden under tests/golden/: regenerate its seeded corpus, run etld on
it, `etlctl sync`, stop etld (exit 0 required), and compare the store with the
golden (tests/golden/compare.py: tokens exactly, cost within $0.000001 per
day). With --pieces K, the corpus is instead fed to a running daemon in K
random pieces cut mid-line, with `etlctl sync` after every piece; the end
result must be the same.

usage: golden_test.py --etld BIN --etlctl BIN --source-root DIR [--pieces K] [--golden NAME]
"""
import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


class Daemon:
    def __init__(self, etld, etlctl, tmp, corpus):
        self.etlctl = etlctl
        self.sock = os.path.join(tmp, "s", "etld.sock")
        self.db = os.path.join(tmp, "etl.db")
        self.log = open(os.path.join(tmp, "etld.log"), "wb")
        env = dict(os.environ)
        env.update(HOME=tmp, CLAUDE_CONFIG_DIR=os.path.join(corpus, "claude"),
                   CODEX_HOME=os.path.join(corpus, "codex"),
                   GEMINI_DATA_DIR=os.path.join(corpus, "gemini", "tmp"))
        env.pop("XDG_RUNTIME_DIR", None)
        self.proc = subprocess.Popen([etld, "--db", self.db, "--socket", self.sock],
                                     stdout=self.log, stderr=self.log, env=env)
        self.ctl_env = env
        # Ready when ping answers; a dead daemon fails at once.
        for _ in range(2000):
            if self.proc.poll() is not None:
                raise SystemExit(f"etld exited early with {self.proc.returncode}")
            r = subprocess.run([etlctl, "--socket", self.sock, "ping", "--timeout", "200"],
                               capture_output=True)
            if r.returncode == 0:
                return
            # connect() fails at once until the socket exists; wait on the process instead
            try:
                self.proc.wait(timeout=0.01)
            except subprocess.TimeoutExpired:
                pass
        raise SystemExit("etld never answered ping")

    def sync_cmd(self):
        return f"{self.etlctl} --socket {self.sock} sync --quiet --timeout 60000"

    def sync(self):
        run([self.etlctl, "--socket", self.sock, "sync", "--quiet", "--timeout", "60000"])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        self.log.close()
        if rc != 0:
            raise SystemExit(f"etld exited with {rc} on SIGTERM")


# Each mart, summed over its rows, must equal the events it aggregates, per
# the dimensions it keeps (store.md, invariant 5, checked end to end).
MART_CHECKS = [
    ("daily_mart", "day, provider, model, speed",
     "SUM(input_tokens), SUM(output_tokens), SUM(cache_read), SUM(cache_create), SUM(message_count), SUM(cost_usd)",
     "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_create_tokens), COUNT(*), SUM(cost_usd)"),
    ("model_day_mart", "day, model, speed",
     "SUM(input_tokens), SUM(output_tokens), SUM(cache_read), SUM(cache_create), SUM(message_count), SUM(cost_usd)",
     "SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), SUM(cache_create_tokens), COUNT(*), SUM(cost_usd)"),
    ("provider_day_mart", "day, provider", "SUM(message_count), SUM(cost_usd)", "COUNT(*), SUM(cost_usd)"),
    ("session_mart", "provider, session_id", "SUM(message_count), SUM(cost_usd)", "COUNT(*), SUM(cost_usd)"),
    ("project_mart", "project_id", "SUM(total_messages), SUM(total_cost_usd)", "COUNT(*), SUM(cost_usd)"),
]


def check_marts(db_path):
    import sqlite3
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    bad = 0
    for table, keys, mart_cols, event_cols in MART_CHECKS:
        mart = {r[:-len(mart_cols.split(","))]: r[-len(mart_cols.split(",")):] for r in
                db.execute(f"SELECT {keys}, {mart_cols} FROM {table} GROUP BY {keys}")}
        events = {r[:-len(event_cols.split(","))]: r[-len(event_cols.split(",")):] for r in
                  db.execute(f"SELECT {keys}, {event_cols} FROM usage_events GROUP BY {keys}")}
        if set(mart) != set(events):
            print(f"{table}: keys differ from the events': {sorted(set(mart) ^ set(events))[:5]}")
            bad += 1
            continue
        for k, want in events.items():
            got = mart[k]
            ints_ok = all(a == b for a, b in zip(got[:-1], want[:-1]))
            cost_ok = abs(got[-1] - want[-1]) <= 1e-9 * max(1.0, abs(want[-1]))
            if not (ints_ok and cost_ok):
                print(f"{table} {k}: mart {got} events {want}")
                bad += 1
    db.close()
    print(f"marts: {'OK' if bad == 0 else f'{bad} mismatch(es)'} against usage_events")
    return bad == 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--etld", required=True)
    ap.add_argument("--etlctl", required=True)
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--pieces", type=int, default=0)
    ap.add_argument("--golden", action="append")
    args = ap.parse_args()

    golden_root = os.path.join(args.source_root, "tests", "golden")
    gen = os.path.join(args.source_root, "bench", "gen_corpus.py")
    feed = os.path.join(args.source_root, "bench", "feed_pieces.py")
    compare = os.path.join(golden_root, "compare.py")
    names = args.golden or sorted(d for d in os.listdir(golden_root)
                                  if os.path.isdir(os.path.join(golden_root, d)))
    failures = 0
    for name in names:
        g = os.path.join(golden_root, name)
        tmp = tempfile.mkdtemp(prefix="etld-gold-")
        try:
            gen_args = subprocess.run([sys.executable, compare, "--golden", g, "--print-gen-args"],
                                      check=True, capture_output=True, text=True).stdout.split()
            source = os.path.join(tmp, "corpus")
            run([sys.executable, gen, *gen_args, "--out", source, "--quiet"])
            if args.pieces:
                target = os.path.join(tmp, "live")
                os.makedirs(target)
                d = Daemon(args.etld, args.etlctl, tmp, target)
                run([sys.executable, feed, "--corpus", source, "--target", target,
                     "--pieces", str(args.pieces), "--piece-seed", "7", "--quiet",
                     "--hook", d.sync_cmd()])
                d.sync()
                d.stop()
                corpus = target
            else:
                d = Daemon(args.etld, args.etlctl, tmp, source)
                d.sync()
                d.stop()
                corpus = source
            r = subprocess.run([sys.executable, compare, "--golden", g, "--corpus", corpus,
                                "--db", d.db])
            marts_ok = check_marts(d.db)
            ok = r.returncode == 0 and marts_ok
            print(f"{name}{' in %d pieces' % args.pieces if args.pieces else ''}: "
                  f"{'ok' if ok else 'MISMATCH'}")
            if not ok:
                failures += 1
                print(open(os.path.join(tmp, "etld.log")).read()[-4000:])
        finally:
            if failures == 0:
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                print(f"kept {tmp}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
