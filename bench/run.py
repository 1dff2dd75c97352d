#!/usr/bin/env python3
"""Every etld benchmark in one run, against the real binaries, with ccusage beside it.

Usage
-----
    bench/run.py --build BUILD [--size-mb 1024] [--small-mb 60] [--quick]
                 [--work DIR] [--out FILE] [--json FILE] [--ccusage PATH]
                 [--appends N] [--idle-seconds S] [--million | --no-million]
                 [--ingest-runs N]

BUILD is a meson build directory holding daemon/etld and ctl/etlctl (and
bench/status_bench when configured with -Dbench=true, for the 1,000,000-event
store). Corpora are generated once under --work (default /tmp/etld-bench) with
bench/gen_corpus.py and reused by later runs with the same seed and size; the
appends a run makes are cut off again when it ends.

What is measured, and how
-------------------------
Every figure is taken from outside the daemon, the way a user or the
dashboard meets it; nothing is instrumented inside etld.

* cold ingest: a fresh store, `etld` started on the corpus, one `sync`
  request (the barrier: every complete line committed and absorbed by every
  mart). Time from exec to the answer; CPU time of the process (all threads,
  /proc/<pid>/stat utime+stime) at that moment; peak RSS = VmHWM from
  /proc/<pid>/status. MB/s = corpus bytes (every file under the three roots)
  / wall seconds; events/s = events.total / wall seconds. Per provider too
  (only that provider's root configured), beside ccusage. The all-providers
  ingest and ccusage's three reports run in --ingest-runs alternating rounds
  (default 3); each side reports its run with the median wall time (etld's
  peak RSS: the largest), and the table lists every run's wall time.
* ccusage: `ccusage <provider> daily --json --offline --timezone UTC` on the
  same files (the full daily report), one process per provider: wall time,
  CPU time and peak RSS from wait4's rusage. Both tools read a warm page cache
  (every file is read once before either runs).
* append latency: with etld running on an ingested store, one Claude usage
  line (a copy of a real line of that session with fresh ids) is appended to a
  session file (open, write, close, as the agents do), then `status` is asked
  over ONE connection as fast as the answers come back, with no sleep, until
  events.max_id moves past its value before the append (committed) and until
  every mart's watermark reaches it (in the marts). One append at a time;
  the files rotate over a set of sessions.
* status latency: from the daemon, N `status` requests one after the other
  over one connection, each timed from the write to the reply's newline; from
  the store, `etlctl --db STORE status --offline --format json` as a whole
  process (spawn to exit) with no daemon running.
* restart: a stopped daemon started again on its fully ingested store and
  corpus: exec to the socket accepting, and exec to the first answered `sync`
  (which stats every file and lists every directory); bytes_read_since_start
  from that answer shows whether any file contents were read.
* no-change sync: `sync` on a running, caught-up daemon (what the 15-minute
  safety-net rescan costs).
* idle: no client, nothing changing, for --idle-seconds: CPU time (sum of
  /proc/<pid>/task/*/schedstat run time) and wake-ups (sum of
  voluntary_ctxt_switches over /proc/<pid>/task/*/status), per minute; RSS
  (VmRSS) at the end.
* rebuild: `etld --backfill --force` on the ingested store (every file read
  again from byte 0, every event re-priced, the marts rebuilt), daemon stopped.
* 1,000,000 events: bench/status_bench builds the store (its own C++ figures
  are quoted too); etld is then started on a copy of it with the small corpus
  as its sources, and status and append latency are measured as above.

Output: a plain-text table on stdout, the same as markdown in --out, and the
raw figures as JSON in --json.
"""
import argparse
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_CCUSAGE = "/work/ccusage/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"
PROVIDERS = ("claude", "codex", "gemini")
MIB = 1024 * 1024

# Goals (foundation issue 6; issues 3 and 4).
GOAL_APPEND_MARTS_P99_MS = 50.0
GOAL_STATUS_DAEMON_MS = 1.0
GOAL_STATUS_STORE_MS = 10.0
GOAL_RESTART_S = 1.0
GOAL_RSS_MB = 64.0
# How long one append may take to show before the run calls it lost.
APPEND_TIMEOUT_S = 30.0
# Sessions the appends rotate over.
APPEND_FILES = 24
# How long etld may take to start listening.
START_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---- statistics ---------------------------------------------------------------

def pct(values, permille):
    """The quantile by the nearest-rank rule: pct(x, 990) of 1,000 values is the 990th."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = -(-permille * len(s) // 1000) - 1  # ceil(n * q) - 1, in integers
    return s[max(0, min(len(s) - 1, k))]


def summary(ms):
    if not ms:
        return {"n": 0}
    return {"n": len(ms), "p50": statistics.median(ms), "p99": pct(ms, 990), "max": max(ms),
            "mean": statistics.fmean(ms)}


# ---- /proc --------------------------------------------------------------------

def proc_status(pid, key):
    """A kB field of /proc/<pid>/status, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def proc_cpu_s(pid):
    """utime + stime of the whole process (all threads), seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def runqueue_wait_s(pid):
    """Time the process's threads spent runnable but waiting for a CPU (schedstat), seconds."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except OSError:
            continue
    return total / 1e9


def threads_counters(pid):
    """(run time ns, voluntary, involuntary context switches) summed over the threads."""
    run_ns = vol = invol = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                run_ns += int(f.read().split()[0])
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except OSError:
            continue  # a thread that just ended
    return run_ns, vol, invol


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / MIB:.1f} GiB"
    sqlite = subprocess.run(["sqlite3", "--version"], capture_output=True, text=True).stdout.split()
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "sqlite_cli": sqlite[0] if sqlite else "?", "load_at_start": load_average()}


# ---- the control socket -------------------------------------------------------

class Conn:
    """One connection: a request line out, its reply line back."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""
        self.next_id = 0

    def raw(self, method, params=None):
        self.next_id += 1
        req = {"v": 1, "id": self.next_id, "method": method}
        if params is not None:
            req["params"] = params
        self.sock.sendall(json.dumps(req, separators=(",", ":")).encode() + b"\n")
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                return line
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise RuntimeError(f"etld closed the connection during {method}")
            self.buf += chunk

    def call(self, method, params=None):
        reply = json.loads(self.raw(method, params))
        if not reply.get("ok"):
            raise RuntimeError(f"{method} failed: {reply.get('error')}")
        return reply["result"]

    def close(self):
        self.sock.close()


# ---- etld ---------------------------------------------------------------------

class Etld:
    """A running etld on a store and a corpus (or per-provider roots)."""

    def __init__(self, bins, workdir, db, roots):
        self.bins = bins
        self.db = db
        self.dir = workdir
        os.makedirs(os.path.join(workdir, "home"), exist_ok=True)
        os.makedirs(os.path.join(workdir, "s"), exist_ok=True)
        self.sock = os.path.join(workdir, "s", "etld.sock")
        self.log_path = os.path.join(workdir, "etld.log")
        self.roots = roots
        self.proc = None
        self.rusage = None

    def argv(self, *extra):
        return [self.bins["etld"], "--db", self.db, "--log-level", "warning",
                "--claude-config-dir", self.roots["claude"], "--codex-home", self.roots["codex"],
                "--gemini-data-dir", self.roots["gemini"], *extra]

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if k not in ("XDG_RUNTIME_DIR", "CLAUDE_CONFIG_DIR", "CODEX_HOME", "GEMINI_DATA_DIR",
                            "ETLD_DB", "ETLD_SOCKET", "ETLD_DISABLE_WATCHER", "ETLD_TEST_HOOKS")}
        env["HOME"] = os.path.join(self.dir, "home")  # nothing of the real home is watched
        return env

    def start(self):
        """Starts etld; returns (seconds from exec to the socket accepting, the connection)."""
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        logf = open(self.log_path, "ab")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.argv("--socket", self.sock), stdout=logf, stderr=logf,
                                     env=self.env())
        logf.close()
        self.t_exec = t0
        while True:
            try:
                conn = Conn(self.sock)
                return time.perf_counter() - t0, conn
            except (FileNotFoundError, ConnectionRefusedError):
                pass
            if self.proc.poll() is not None:
                raise SystemExit(f"etld exited with {self.proc.returncode} while starting; "
                                 f"log:\n{self.tail_log()}")
            if time.perf_counter() - t0 > START_TIMEOUT_S:
                raise SystemExit("etld did not listen in time")
            time.sleep(0.0005)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        """SIGTERM, then reap with wait4: exit code, and the process's rusage."""
        self.proc.send_signal(signal.SIGTERM)
        _, status, self.rusage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        if self.proc.returncode != 0:
            raise SystemExit(f"etld exited with {self.proc.returncode} on SIGTERM; "
                             f"log:\n{self.tail_log()}")

    def tail_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-3000:].decode(errors="replace")
        except OSError:
            return ""


def sync(conn):
    return conn.call("sync", {"timeout_ms": 4 * 3600 * 1000})


def min_watermark(status):
    return min(m["watermark"] for m in status["marts"].values())


def bytes_read(status):
    return sum(s.get("bytes_read_since_start", 0) for s in status["sources"].values())


def files_known(status):
    return sum(s.get("files", 0) for s in status["sources"].values())


# ---- corpora ------------------------------------------------------------------

def corpus_roots(corpus):
    return {"claude": os.path.join(corpus, "claude"), "codex": os.path.join(corpus, "codex"),
            "gemini": os.path.join(corpus, "gemini", "tmp")}


def tree_stats(path):
    files = size = 0
    for dirpath, _, names in os.walk(path):
        for n in names:
            files += 1
            size += os.path.getsize(os.path.join(dirpath, n))
    return files, size


def ensure_corpus(work, seed, size_mb):
    """The corpus for (seed, size), generated once and reused."""
    corpus = os.path.join(work, f"corpus-s{seed}-{size_mb:g}mb")
    stamp = corpus + ".done"
    if not os.path.exists(stamp):
        shutil.rmtree(corpus, ignore_errors=True)
        log(f"generating a {size_mb:g} MB corpus (seed {seed}) into {corpus}")
        t0 = time.perf_counter()
        subprocess.run([sys.executable, os.path.join(HERE, "gen_corpus.py"), "--seed", str(seed),
                        "--size-mb", str(size_mb), "--out", corpus, "--quiet"], check=True)
        with open(stamp, "w") as f:
            f.write(f"{time.perf_counter() - t0:.1f}\n")
    restore_appends(corpus)
    files, size = tree_stats(corpus)
    per = {p: tree_stats(r) for p, r in corpus_roots(corpus).items()}
    return {"path": corpus, "files": files, "bytes": size, "per_provider": per}


def warm(corpus):
    """Every file read once: both tools then meet a warm page cache."""
    for dirpath, _, names in os.walk(corpus):
        for n in names:
            with open(os.path.join(dirpath, n), "rb") as f:
                while f.read(1 << 20):
                    pass


def appends_journal(corpus):
    return corpus + ".appends.json"


def restore_appends(corpus):
    """Cuts the lines an earlier run appended (recorded sizes) off again."""
    journal = appends_journal(corpus)
    if not os.path.exists(journal):
        return
    with open(journal) as f:
        sizes = json.load(f)
    for path, size in sizes.items():
        if os.path.exists(path) and os.path.getsize(path) > size:
            os.truncate(path, size)
    os.unlink(journal)


# ---- ccusage ------------------------------------------------------------------

def run_ccusage(ccusage, corpus, provider, workdir):
    roots = corpus_roots(corpus)
    var = {"claude": "CLAUDE_CONFIG_DIR", "codex": "CODEX_HOME", "gemini": "GEMINI_DATA_DIR"}[provider]
    home = os.path.join(workdir, "cchome")
    os.makedirs(home, exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": home, var: roots[provider], "TZ": "UTC"}
    out = os.path.join(workdir, f"ccusage-{provider}.json")
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        p = subprocess.Popen([ccusage, provider, "daily", "--json", "--offline", "--timezone", "UTC"],
                             stdout=f, stderr=subprocess.DEVNULL, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        return {"error": f"exit {p.returncode}"}
    try:
        with open(out) as f:
            days = len(json.load(f).get("daily", []))
    except (OSError, ValueError):
        days = None
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
            "days": days}


# ---- benchmarks ---------------------------------------------------------------

def median_run(runs):
    """The run with the median wall time (the lower middle one of an even count)."""
    ordered = sorted(runs, key=lambda r: r["wall_s"])
    return ordered[(len(ordered) - 1) // 2]


def cold_ingest(bins, workdir, roots, nbytes):
    """A fresh store, exec to the first answered sync."""
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    d = Etld(bins, workdir, os.path.join(workdir, "etl.db"), roots)
    _, conn = d.start()
    st = sync(conn)
    wall = time.perf_counter() - d.t_exec
    cpu = proc_cpu_s(d.pid)
    hwm = proc_status(d.pid, "VmHWM")
    events = st["events"]["total"]
    r = {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": hwm, "cpu_wait_s": runqueue_wait_s(d.pid), "events": events, "bytes": nbytes,
         "mb_per_s": nbytes / MIB / wall, "mb_per_cpu_s": nbytes / MIB / cpu if cpu else None,
         "events_per_s": events / wall, "files": files_known(st), "load": load_average()}
    return r, d, conn


def status_latency_daemon(conn, n, warmup=20):
    ms = []
    for i in range(warmup + n):
        t0 = time.perf_counter_ns()
        line = conn.raw("status")
        dt = (time.perf_counter_ns() - t0) / 1e6
        if i == 0 and b'"ok":true' not in line:
            raise SystemExit(f"status failed: {line[:200]!r}")
        if i >= warmup:
            ms.append(dt)
    return summary(ms)


def status_latency_store(bins, db, runs):
    """etlctl status --offline as a whole process, with no daemon running."""
    ms, cpu = [], []
    argv = [bins["etlctl"], "--db", db, "status", "--offline", "--format", "json"]
    for i in range(runs + 1):
        t0 = time.perf_counter_ns()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, ru = os.wait4(p.pid, 0)
        dt = (time.perf_counter_ns() - t0) / 1e6
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode not in (0, 1):  # 1: a stale store is still a document
            raise SystemExit(f"etlctl status --offline exited {p.returncode}: {p.stderr.read()!r}")
        p.stderr.close()
        if i > 0:  # the first run warms the page cache
            ms.append(dt)
            cpu.append((ru.ru_utime + ru.ru_stime) * 1000)
    r = summary(ms)
    r["cpu_p50"] = statistics.median(cpu)
    return r


def claude_sessions(corpus, count):
    """Main Claude transcripts (not subagents) holding a usage line, spread over the corpus."""
    root = os.path.join(corpus, "claude", "projects")
    found = []
    for dirpath, _, names in os.walk(root):
        if "subagents" in dirpath:
            continue
        for n in sorted(names):
            if n.endswith(".jsonl"):
                found.append(os.path.join(dirpath, n))
    found.sort()
    step = max(1, len(found) // (count * 2))
    picked = []
    for path in found[::step]:
        template = None
        with open(path, "rb") as f:
            for line in f:
                if b'"usage"' in line and b'"type":"assistant"' in line and b'"requestId"' in line:
                    template = line
        if template:
            picked.append((path, json.loads(template)))
        if len(picked) == count:
            break
    return picked


def append_latency(conn, corpus, n, tag):
    """Appends n usage lines one at a time; per append, ms until committed and until in the marts."""
    sessions = claude_sessions(corpus, APPEND_FILES)
    if not sessions:
        raise SystemExit("no Claude session with a usage line to append to")
    journal = appends_journal(corpus)
    sizes = {}
    if os.path.exists(journal):
        with open(journal) as f:
            sizes = json.load(f)
    for path, _ in sessions:
        sizes.setdefault(path, os.path.getsize(path))
    with open(journal, "w") as f:
        json.dump(sizes, f)
    rng = random.Random(f"append:{tag}")
    st = conn.call("status")
    committed, marts, lost = [], [], 0
    for i in range(n):
        path, tpl = sessions[i % len(sessions)]
        rec = json.loads(json.dumps(tpl))
        rec["uuid"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        rec["parentUuid"] = tpl.get("uuid")
        rec["message"]["id"] = f"msg_bench{tag}{i:07d}"
        rec["requestId"] = f"req_bench{tag}{i:07d}"
        rec["message"]["usage"]["output_tokens"] = 1 + rng.randrange(2000)
        line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
        before = st["events"]["max_id"]
        t0 = time.perf_counter_ns()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, line)
        os.close(fd)
        t_commit = None
        while True:
            st = json.loads(conn.raw("status"))["result"]
            now = time.perf_counter_ns()
            mx = st["events"]["max_id"]
            if mx > before and t_commit is None:
                t_commit = now
            if mx > before and min_watermark(st) >= mx:
                committed.append((t_commit - t0) / 1e6)
                marts.append((now - t0) / 1e6)
                break
            if (now - t0) / 1e9 > APPEND_TIMEOUT_S:
                lost += 1
                break
    return {"committed": summary(committed), "marts": summary(marts), "lost": lost,
            "events_after": st["events"]["total"], "files": len(sessions),
            "source_files": files_known(st)}


def idle(pid, seconds):
    run0, vol0, inv0 = threads_counters(pid)
    t0 = time.perf_counter()
    time.sleep(seconds)
    run1, vol1, inv1 = threads_counters(pid)
    dt = time.perf_counter() - t0
    return {"seconds": dt, "cpu_ms_per_min": (run1 - run0) / 1e6 * 60 / dt,
            "cpu_percent": (run1 - run0) / 1e9 / dt * 100,
            "wakeups_per_min": (vol1 - vol0) * 60 / dt,
            "involuntary_per_min": (inv1 - inv0) * 60 / dt,
            "rss_mb": proc_status(pid, "VmRSS"), "threads": len(os.listdir(f"/proc/{pid}/task"))}


def restarts(bins, workdir, db, roots, count):
    runs = []
    for _ in range(count):
        d = Etld(bins, workdir, db, roots)
        listen_s, conn = d.start()
        st = sync(conn)
        total = time.perf_counter() - d.t_exec
        runs.append({"listen_s": listen_s, "sync_s": total, "bytes_read": bytes_read(st),
                     "files": files_known(st), "events": st["events"]["total"],
                     "cpu_s": proc_cpu_s(d.pid)})
        conn.close()
        d.stop()
    return {"runs": runs, "sync_p50_s": statistics.median(r["sync_s"] for r in runs),
            "sync_max_s": max(r["sync_s"] for r in runs),
            "listen_p50_s": statistics.median(r["listen_s"] for r in runs),
            "bytes_read_max": max(r["bytes_read"] for r in runs),
            "files": runs[0]["files"], "events": runs[0]["events"]}


def no_change_sync(conn, count):
    ms = []
    for _ in range(count):
        t0 = time.perf_counter_ns()
        sync(conn)
        ms.append((time.perf_counter_ns() - t0) / 1e6)
    return summary(ms)


def rebuild(bins, workdir, db, roots, nbytes):
    d = Etld(bins, workdir, db, roots)
    t0 = time.perf_counter()
    p = subprocess.Popen(d.argv("--backfill", "--force"), env=d.env(),
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise SystemExit(f"etld --backfill --force exited {p.returncode}: {err[-2000:]}")
    events = int(subprocess.run(["sqlite3", db, "SELECT count(*) FROM usage_events"],
                                capture_output=True, text=True, check=True).stdout)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_mb": ru.ru_maxrss / 1024,
            "mb_per_s": nbytes / MIB / wall, "events_per_s": events / wall, "events": events}


def million_store(bins, work, quick):
    """The 1,000,000-event store from status_bench (built once, kept), and its own figures."""
    exe = bins.get("status_bench")
    keep = os.path.join(work, "store-1m")
    db = os.path.join(keep, "etl.db")
    argv = [exe, "--etld", bins["etld"], "--etlctl", bins["etlctl"], "--dir", keep, "--keep"]
    if os.path.exists(db):
        argv.append("--reuse")
    if quick:
        argv += ["--requests", "200", "--runs", "20"]
    log("status_bench: " + " ".join(argv))
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        log(f"status_bench failed ({out.returncode}): {out.stderr[-1500:]}")
        return None, out.stdout
    return db, out.stdout


def store_size(db):
    return sum(os.path.getsize(db + s) for s in ("", "-wal") if os.path.exists(db + s)) / MIB


# ---- the table ----------------------------------------------------------------

def fmt(v, digits=1):
    if v is None:
        return "—"
    if isinstance(v, float) and v != v:
        return "—"
    if isinstance(v, int):
        return f"{v:,}"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def verdict(ok):
    return "meets" if ok else "MISSES"


def build_tables(R):
    """Rows of (section, [header], [[cells]]) from the results."""
    tables = []
    big, small = R["corpora"]["big"], R["corpora"].get("small")

    # Cold ingest beside ccusage.
    rows = []
    for label, key in (("all three", "all"),) + tuple((p, p) for p in PROVIDERS):
        e = R["cold"].get(key)
        c = R["ccusage"].get(key)
        if not e:
            continue
        row = [label, fmt(e["bytes"] / MIB), fmt(e["events"]), fmt(e["wall_s"], 2),
               fmt(e["mb_per_s"]), fmt(e["events_per_s"]), fmt(e["cpu_s"], 2),
               fmt(e["bytes"] / MIB / e["cpu_s"]) if e["cpu_s"] else "—", fmt(e["cpu_wait_s"], 2),
               fmt(e["peak_rss_mb"])]
        if c and "wall_s" in c:
            row += [fmt(c["wall_s"], 2), fmt(c["cpu_s"], 2), fmt(c["peak_rss_mb"]),
                    f"{e['wall_s'] / c['wall_s']:.2f}", f"{e['cpu_s'] / c['cpu_s']:.2f}",
                    f"{e['peak_rss_mb'] / c['peak_rss_mb']:.2f}"]
        else:
            row += ["—"] * 6
        rows.append(row)
    runs_note = ""
    e_all, c_all = R["cold"].get("all", {}), R["ccusage"].get("all", {})
    if len(e_all.get("runs_wall_s", [])) > 1:
        walls = lambda rs: " / ".join(fmt(w, 2) for w in rs)
        runs_note = (f"; all three and ccusage: the median of {len(e_all['runs_wall_s'])} alternating "
                     f"runs each (etld wall s {walls(e_all['runs_wall_s'])}")
        if c_all.get("runs_wall_s"):
            runs_note += f"; ccusage {walls(c_all['runs_wall_s'])}"
        runs_note += "; etld's peak RSS the largest)"
    tables.append((f"Cold ingest, {fmt(big['bytes'] / MIB)} MiB corpus ({fmt(big['files'])} files), "
                   "etld beside ccusage 20.0.24 (ratios etld / ccusage; below 1: etld is faster or smaller"
                   + runs_note + ")",
                   ["providers", "MiB", "events", "etld wall s", "MB/s", "events/s", "etld CPU s",
                    "MB per CPU s", "etld waiting for a CPU s", "etld peak RSS MiB", "ccusage wall s", "ccusage CPU s", "ccusage peak RSS MiB",
                    "wall ratio", "CPU ratio", "RSS ratio"], rows))

    # Latency and resources against the goals.
    rows = []
    def add(what, value, goal, ok, how=""):
        rows.append([what, value, goal, "—" if ok is None else verdict(ok), how])

    for key, label in (("small", "~10k"), ("big", "corpus"), ("million", "1M")):
        a = R["append"].get(key)
        if not a:
            continue
        ev = f"{fmt(a['events_after'])} events, {fmt(a['source_files'])} files"
        c, m = a["committed"], a["marts"]
        if c.get("n"):
            add(f"append → committed, {ev} (n={c['n']})",
                f"p50 {fmt(c['p50'], 2)} · p99 {fmt(c['p99'], 2)} · max {fmt(c['max'], 2)} ms", "—", None)
            add(f"append → marts, {ev} (n={m['n']})",
                f"p50 {fmt(m['p50'], 2)} · p99 {fmt(m['p99'], 2)} · max {fmt(m['max'], 2)} ms",
                f"p99 < {GOAL_APPEND_MARTS_P99_MS:g} ms", m["p99"] < GOAL_APPEND_MARTS_P99_MS,
                f"{a['lost']} lost" if a["lost"] else "")
    for key in ("small", "big", "million"):
        s = R["status"].get(key)
        if not s:
            continue
        ev = fmt(s["events"])
        if "daemon" in s:
            d = s["daemon"]
            add(f"status from the daemon, {ev} events (n={d['n']})",
                f"p50 {fmt(d['p50'], 3)} · p99 {fmt(d['p99'], 3)} ms",
                f"< {GOAL_STATUS_DAEMON_MS:g} ms", d["p50"] < GOAL_STATUS_DAEMON_MS)
        if "store" in s:
            d = s["store"]
            add(f"status from the store (etlctl --offline), {ev} events (n={d['n']})",
                f"p50 {fmt(d['p50'], 2)} · p99 {fmt(d['p99'], 2)} ms (CPU {fmt(d['cpu_p50'], 1)})",
                f"< {GOAL_STATUS_STORE_MS:g} ms", d["p50"] < GOAL_STATUS_STORE_MS)
    rs = R.get("restart")
    if rs:
        add(f"restart → first sync answered, {fmt(rs['files'])} files, {fmt(rs['events'])} events "
            f"(n={len(rs['runs'])})",
            f"p50 {fmt(rs['sync_p50_s'] * 1000, 0)} · max {fmt(rs['sync_max_s'] * 1000, 0)} ms "
            f"(listening after {fmt(rs['listen_p50_s'] * 1000, 1)} ms; "
            f"CPU {fmt(statistics.median(r['cpu_s'] for r in rs['runs']) * 1000, 0)} ms)",
            f"< {GOAL_RESTART_S * 1000:g} ms", rs["sync_max_s"] < GOAL_RESTART_S)
        add("  bytes_read_since_start after that sync", fmt(rs["bytes_read_max"]), "0",
            rs["bytes_read_max"] == 0)
    nc = R.get("no_change_sync")
    if nc:
        add(f"sync with nothing changed (full stat rescan; n={nc['n']})",
            f"p50 {fmt(nc['p50'], 0)} · max {fmt(nc['max'], 0)} ms", "—", None)
    idl = R.get("idle")
    if idl:
        add(f"idle CPU ({fmt(idl['seconds'], 0)} s window, {idl['threads']} threads)",
            f"{fmt(idl['cpu_ms_per_min'], 2)} ms/min ({idl['cpu_percent']:.4f} %)", "≈ 0",
            idl["cpu_percent"] < 0.1)
        add("idle wake-ups (voluntary context switches, all threads)",
            f"{fmt(idl['wakeups_per_min'], 1)} /min", "≈ 0", None)
        add("RSS idle (VmRSS after the idle window)", f"{fmt(idl['rss_mb'])} MiB", "—", None)
    if R["cold"].get("all"):
        e = R["cold"]["all"]
        add(f"peak RSS while ingesting {fmt(e['bytes'] / MIB)} MiB (VmHWM)", f"{fmt(e['peak_rss_mb'])} MiB",
            f"< {GOAL_RSS_MB:g} MiB", e["peak_rss_mb"] < GOAL_RSS_MB)
    if R.get("load_rss"):
        add("RSS under append load (max VmRSS sampled)", f"{fmt(R['load_rss'])} MiB",
            f"< {GOAL_RSS_MB:g} MiB", R["load_rss"] < GOAL_RSS_MB)
    for key, label in (("big", "corpus"), ("small", "small corpus")):
        rb = R["rebuild"].get(key)
        if rb:
            add(f"full rebuild, etld --backfill --force, {label} ({fmt(rb['events'])} events)",
                f"{fmt(rb['wall_s'], 1)} s · {fmt(rb['mb_per_s'])} MB/s · {fmt(rb['events_per_s'])} events/s "
                f"· peak RSS {fmt(rb['peak_rss_mb'])} MiB", "—", None)
    rb, kept = R["rebuild"].get("big"), R.get("events_before_rebuild")
    if rb and kept is not None:
        add("events: the daemon's (cold ingest, appends, syncs) = a rebuild's from byte 0",
            f"{fmt(kept)} = {fmt(rb['events'])}", "equal", kept == rb["events"])
    sm = R["cold"].get("small")
    if sm:
        add(f"cold ingest, small corpus ({fmt(sm['bytes'] / MIB)} MiB, {fmt(sm['events'])} events)",
            f"{fmt(sm['wall_s'], 2)} s · {fmt(sm['mb_per_s'])} MB/s · {fmt(sm['events_per_s'])} events/s",
            "—", None)
    if R["ccusage"].get("ratio_all") is not None:
        cpu_ratio = R["cold"]["all"]["cpu_s"] / R["ccusage"]["all"]["cpu_s"]
        add("cold ingest vs ccusage, all providers (wall; CPU)",
            f"{R['ccusage']['ratio_all']:.2f}×; {cpu_ratio:.2f}× ccusage", "≤ 1×",
            R["ccusage"]["ratio_all"] <= 1.0 and cpu_ratio <= 1.0)
    tables.append(("Against the goals", ["measure", "value", "goal", "verdict", "note"], rows))
    return tables


def render_text(tables):
    out = []
    for title, header, rows in tables:
        out.append(title)
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else []
        out.append("  ".join(h.ljust(w) for h, w in zip(header, widths)))
        out.append("  ".join("-" * w for w in widths))
        for r in rows:
            out.append("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
        out.append("")
    return "\n".join(out)


def render_markdown(tables, R):
    m = R["machine"]
    out = [f"Run of {R['date']} (`bench/run.py {' '.join(R['argv'])}`), "
           f"{m['cpus']} CPUs ({m['cpu_model']}), {m['memory']} memory, Linux {m['kernel']}, "
           f"load average {m['load_at_start']} at the start and {R['load_at_end']} at the end.", ""]
    for title, header, rows in tables:
        out.append(f"**{title}**")
        out.append("")
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join("---" for _ in header) + "|")
        for r in rows:
            out.append("| " + " | ".join(str(c) for c in r) + " |")
        out.append("")
    return "\n".join(out)


# ---- main ---------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--size-mb", type=float, default=1024, help="the big corpus (default 1024)")
    ap.add_argument("--small-mb", type=float, default=60, help="the ~10,000-event corpus (default 60)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--work", default="/tmp/etld-bench", help="corpora and stores (kept)")
    ap.add_argument("--out", help="markdown table (default WORK/results.md)")
    ap.add_argument("--json", help="raw figures (default WORK/results.json)")
    ap.add_argument("--ccusage", default=DEFAULT_CCUSAGE)
    ap.add_argument("--quick", action="store_true",
                    help="fewer appends and requests, a 10 s idle window, 3 restarts")
    ap.add_argument("--appends", type=int)
    ap.add_argument("--idle-seconds", type=float)
    ap.add_argument("--million", dest="million", action="store_true", default=None)
    ap.add_argument("--no-million", dest="million", action="store_false")
    ap.add_argument("--no-per-provider", action="store_true",
                    help="skip etld's per-provider cold ingests")
    ap.add_argument("--no-rebuild", action="store_true")
    ap.add_argument("--ingest-runs", type=int, default=3,
                    help="rounds of the all-providers cold ingest and of ccusage's reports, "
                         "alternated; the run with the median wall time is reported (default 3)")
    args = ap.parse_args()

    q = args.quick
    appends = args.appends or (200 if q else 1000)
    idle_s = args.idle_seconds or (10.0 if q else 30.0)
    requests, runs, n_restarts = (300, 30, 3) if q else (1000, 100, 5)
    build = os.path.abspath(args.build)
    bins = {"etld": os.path.join(build, "daemon", "etld"), "etlctl": os.path.join(build, "ctl", "etlctl")}
    for k, v in bins.items():
        if not os.access(v, os.X_OK):
            raise SystemExit(f"no {k} at {v}: build it first (ninja -C {args.build})")
    sb = os.path.join(build, "bench", "status_bench")
    if os.access(sb, os.X_OK):
        bins["status_bench"] = sb
    want_million = args.million if args.million is not None else "status_bench" in bins
    if want_million and "status_bench" not in bins:
        raise SystemExit(f"--million needs {sb} (configure with -Dbench=true)")
    ccusage = args.ccusage if args.ccusage and os.access(args.ccusage, os.X_OK) else None
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    scratch = os.path.join(work, "run")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    tag = f"{int(time.time()) % 100000:05d}"

    R = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "argv": sys.argv[1:],
         "machine": machine(), "corpora": {}, "cold": {}, "ccusage": {}, "append": {}, "status": {},
         "rebuild": {}}
    if ccusage:
        R["machine"]["ccusage"] = subprocess.run([ccusage, "--version"], capture_output=True,
                                                 text=True).stdout.strip()
    log(f"machine: {R['machine']}")

    big = ensure_corpus(work, args.seed, args.size_mb)
    small = ensure_corpus(work, args.seed, args.small_mb)
    R["corpora"] = {"big": big, "small": small}
    log(f"corpora: big {big['bytes'] / MIB:.0f} MiB / {big['files']} files; "
        f"small {small['bytes'] / MIB:.0f} MiB / {small['files']} files")
    empty = os.path.join(scratch, "empty")
    os.makedirs(empty)
    try:
        # ---- ccusage and the per-provider cold ingests (big corpus) ----
        warm(big["path"])
        # ccusage's three reports and etld's all-providers ingest, in
        # alternating rounds so that a noisy moment falls on both; each side
        # reports its run with the median wall time.
        rounds = max(1, args.ingest_runs)
        cc_rounds, etld_runs = [], []
        bigdir = os.path.join(scratch, "big")
        for i in range(rounds):
            if ccusage:
                one = {}
                for p in PROVIDERS:
                    log(f"ccusage {p} daily on the big corpus (round {i + 1} of {rounds})")
                    one[p] = run_ccusage(ccusage, big["path"], p, scratch)
                    log(f"  {one[p]}")
                if all("wall_s" in one[p] for p in PROVIDERS):
                    one["all"] = {"wall_s": sum(one[p]["wall_s"] for p in PROVIDERS),
                                  "cpu_s": sum(one[p]["cpu_s"] for p in PROVIDERS),
                                  "peak_rss_mb": max(one[p]["peak_rss_mb"] for p in PROVIDERS)}
                cc_rounds.append(one)
            if i + 1 < rounds:
                log(f"etld cold ingest, big corpus (round {i + 1} of {rounds})")
                r, d, conn = cold_ingest(bins, bigdir, corpus_roots(big["path"]), big["bytes"])
                conn.close()
                d.stop()
                etld_runs.append(r)
                log(f"  {r}")
        for key in PROVIDERS + ("all",):
            runs_of = [one[key] for one in cc_rounds if "wall_s" in one.get(key, {})]
            if runs_of:
                R["ccusage"][key] = dict(median_run(runs_of), runs_wall_s=[c["wall_s"] for c in runs_of])
            elif cc_rounds:
                R["ccusage"][key] = cc_rounds[-1].get(key, {"error": "failed"})
        if not args.no_per_provider:
            for p in PROVIDERS:
                log(f"etld cold ingest, {p} only")
                roots = {k: (v if k == p else empty) for k, v in corpus_roots(big["path"]).items()}
                r, d, conn = cold_ingest(bins, os.path.join(scratch, f"cold-{p}"), roots,
                                         big["per_provider"][p][1])
                conn.close()
                d.stop()
                R["cold"][p] = r
                log(f"  {r}")
                shutil.rmtree(os.path.join(scratch, f"cold-{p}"), ignore_errors=True)

        # ---- the big corpus: cold ingest, then everything on that daemon ----
        # The last round's daemon stays up for everything that follows.
        log(f"etld cold ingest, big corpus (round {rounds} of {rounds})")
        r, d, conn = cold_ingest(bins, bigdir, corpus_roots(big["path"]), big["bytes"])
        log(f"  {r}")
        etld_runs.append(r)
        R["cold"]["all"] = dict(median_run(etld_runs), runs_wall_s=[e["wall_s"] for e in etld_runs],
                                runs_cpu_s=[e["cpu_s"] for e in etld_runs],
                                peak_rss_mb=max(e["peak_rss_mb"] for e in etld_runs))  # the worst
        if R["ccusage"].get("all", {}).get("wall_s"):
            R["ccusage"]["ratio_all"] = R["cold"]["all"]["wall_s"] / R["ccusage"]["all"]["wall_s"]
        R["status"]["big"] = {"events": r["events"], "daemon": status_latency_daemon(conn, requests)}
        log(f"  status from the daemon: {R['status']['big']['daemon']}")
        log(f"appends ({appends}) on the big corpus")
        rss_before = proc_status(d.pid, "VmRSS")
        R["append"]["big"] = append_latency(conn, big["path"], appends, tag + "b")
        R["load_rss"] = max(rss_before or 0, proc_status(d.pid, "VmRSS") or 0)
        log(f"  {R['append']['big']}")
        R["no_change_sync"] = no_change_sync(conn, 3 if q else 5)
        log(f"  no-change sync: {R['no_change_sync']}")
        # What the rebuild below, reading every file from its first byte, must
        # find too: a daemon that loses or doubles a record differs.
        R["events_before_rebuild"] = sync(conn)["events"]["total"]
        conn.close()
        time.sleep(1.0)  # let the last client's close settle before the window opens
        log(f"idle window {idle_s:g} s")
        R["idle"] = idle(d.pid, idle_s)
        log(f"  {R['idle']}")
        d.stop()
        log("restarts")
        R["restart"] = restarts(bins, bigdir, d.db, corpus_roots(big["path"]), n_restarts)
        log(f"  {R['restart']}")
        log("etlctl status --offline on the big store")
        R["status"]["big"]["store"] = status_latency_store(bins, d.db, runs)
        R["status"]["big"]["store_mib"] = store_size(d.db)
        if not args.no_rebuild:
            log("etld --backfill --force on the big store")
            R["rebuild"]["big"] = rebuild(bins, bigdir, d.db, corpus_roots(big["path"]), big["bytes"])
            log(f"  {R['rebuild']['big']}")
        restore_appends(big["path"])

        # ---- the small corpus (~10,000 events) ----
        log("etld cold ingest, small corpus")
        warm(small["path"])
        smalldir = os.path.join(scratch, "small")
        r, d, conn = cold_ingest(bins, smalldir, corpus_roots(small["path"]), small["bytes"])
        R["cold"]["small"] = r
        R["status"]["small"] = {"events": r["events"], "daemon": status_latency_daemon(conn, requests)}
        log(f"  {r}; status {R['status']['small']['daemon']}")
        R["append"]["small"] = append_latency(conn, small["path"], appends, tag + "s")
        log(f"  appends: {R['append']['small']}")
        conn.close()
        d.stop()
        restore_appends(small["path"])
        R["status"]["small"]["store"] = status_latency_store(bins, d.db, runs)
        if not args.no_rebuild:
            R["rebuild"]["small"] = rebuild(bins, smalldir, d.db, corpus_roots(small["path"]),
                                            small["bytes"])

        # ---- 1,000,000 events ----
        if want_million:
            db1m, sb_out = million_store(bins, work, q)
            R["status_bench_output"] = sb_out
            if db1m:
                mdir = os.path.join(scratch, "million")
                os.makedirs(mdir)
                db = os.path.join(mdir, "etl.db")
                shutil.copyfile(db1m, db)
                log("etld on the 1,000,000-event store with the small corpus as sources")
                d = Etld(bins, mdir, db, corpus_roots(small["path"]))
                _, conn = d.start()
                st = sync(conn)
                R["status"]["million"] = {"events": st["events"]["total"],
                                          "daemon": status_latency_daemon(conn, requests)}
                log(f"  status {R['status']['million']['daemon']}")
                R["append"]["million"] = append_latency(conn, small["path"], appends, tag + "m")
                log(f"  appends: {R['append']['million']}")
                conn.close()
                d.stop()
                restore_appends(small["path"])
                R["status"]["million"]["store"] = status_latency_store(bins, db, runs)
                os.unlink(db)
    finally:
        restore_appends(big["path"])
        restore_appends(small["path"])

    R["load_at_end"] = load_average()
    tables = build_tables(R)
    text = render_text(tables)
    print(text)
    md = render_markdown(tables, R)
    if R.get("status_bench_output"):
        md += "\nstatus_bench (C++ client, the same 1,000,000-event store):\n\n```\n" + \
              R["status_bench_output"].strip() + "\n```\n"
    out = args.out or os.path.join(work, "results.md")
    with open(out, "w") as f:
        f.write(md)
    with open(args.json or os.path.join(work, "results.json"), "w") as f:
        json.dump(R, f, indent=1, default=str)
    log(f"wrote {out}")


if __name__ == "__main__":
    main()
