#!/usr/bin/env python3
"""Seeded corpus generator: Claude Code, Codex CLI and Gemini CLI logs in their real formats.

Usage
-----
    gen_corpus.py --seed N --out DIR [--preset small|medium | --size-mb M]
                  [--providers claude,codex,gemini]
                  [--ccusage-compatible | --full] [--huge-lines]
                  [--expected FILE] [--prices FILE] [--quiet]

Writes, under DIR (which must be empty or absent):

    claude/projects/<slug>/<session>.jsonl
    claude/projects/<slug>/<session>/subagents/agent-<id>.jsonl
    codex/sessions/YYYY/MM/DD/rollout-YYYY-MM-DDTHH-MM-SS-<uuid>.jsonl
    codex/archived_sessions/rollout-...jsonl   (and one nested copy, see below)
    gemini/tmp/<sha256(project path)>/chats/session-<time>-<id>.json | .jsonl

Point the tools at it with CLAUDE_CONFIG_DIR=DIR/claude, CODEX_HOME=DIR/codex,
GEMINI_DATA_DIR=DIR/gemini/tmp.

Flags
-----
--seed N            everything is a function of N (random.Random, no clock); each
                    provider draws from its own stream ("N:claude", ...), so
                    --providers claude writes exactly the claude/ tree of a full run.
--preset small      ~450-500 KB, 5 days, short texts (golden corpora, unit tests).
--preset medium     ~8 MB, 30 days, realistic line sizes (benchmarks).
--size-mb M         ~M MB, realistic line sizes, span grows with M (benchmarks).
                    Default: --preset small.  Budgets: claude 55 %, codex 25 %,
                    gemini 20 % of the total; each provider always writes its
                    fixed list of feature sessions first, so tiny sizes overshoot.
--providers LIST    comma-separated subset of claude,codex,gemini (default all).
--ccusage-compatible
                    (default) avoid every case listed under "Deliberate differences
                    from ccusage" in spec/sources.md, so ccusage 20.0.24 and etld
                    must report the same totals: compact lines only, millisecond
                    timestamps with Z, Claude responses without requestId only as
                    single lines or chunks sharing one timestamp, no null-written
                    keys (not even inside strings), no malformed/truncated lines,
                    no Codex config.toml, every Gemini record has a timestamp; and
                    two differences sources.md does not list (tests/golden/README.md):
                    no cached > input in totals-only Codex sessions, no agent-progress
                    line dated on another day than its inner record.
--full              add what only etld is specified to handle (robustness tests):
                    malformed and invalid lines (skipped and counted), truncated
                    last lines (pending: no newline), invalid UTF-8 in prompts,
                    microsecond timestamps, id-less Claude chunks with differing
                    timestamps, non-compact JSON lines, `"requestId":null` inside
                    a string, a mid-write Gemini .json, a Gemini record without
                    timestamp, Codex records with unparseable timestamps and a
                    $CODEX_HOME/config.toml asking for the fast tier.
--huge-lines        (with --full) one line above 16 MiB per Claude and Codex corpus.
--expected FILE     also write what etld must store for this corpus under the rules
                    of spec/sources.md (see corpus_expect.py): per provider, day,
                    model and speed the token sums, reasoning, cost, event count,
                    and the count of skipped lines. Keep FILE outside DIR (the
                    corpus hash covers every file under DIR).
--prices FILE       LiteLLM-shaped price file for --expected (default: the
                    repository's data/prices.json, else the shared snapshot
                    $ETLD_SHARED_DIR/data/litellm-prices-2026-07-24.json).

What the corpus contains (see spec/sources.md for what each case must count)
---------------------------------------------------------------------------
Claude: user, tool-result, summary and system lines (not usage); responses streamed
as 1-4 chunks sharing message.id + requestId, either growing (later chunk heavier)
or identical (old 1.0.x style); legacy 0.2.x sessions without requestId carrying
costUSD; cache_creation with an ephemeral 5m/1h split (2.x), plain
cache_creation_input_tokens (1.0.x); records above 200k tokens per component on
claude-sonnet-4 / 4-5 (tiered) models; `speed:"fast"` on opus-4-6/4-7/4-8;
`<synthetic>` API-error lines; an unknown model (claude-2.1); subagent transcripts
(isSidechain true) mirrored by agent_progress lines in the main transcript; /btw
style sidechain replays of main responses (same message.id, same/other/no
requestId, same or heavier usage); continued sessions that copy the tail of the
previous transcript (same ids); sessions crossing UTC midnight, including
streamed responses whose chunks straddle it.
Codex: session_meta, turn_context (model), response items, token_count events with
last_token_usage + total_token_usage, repeated token_count (same total), totals-only
sessions (old CLI), info:null events, model switches mid-file, sessions without
turn_context (gpt-5 fallback), gpt-5.4 calls above its 272k tier, archived
sessions, forked sessions that copy a parent's prefix (forked_from_id), one file
present under the same relative path in sessions/ and archived_sessions/.
Gemini: .json sessions (pretty and compact) with messages[] of type user / gemini /
info, tokens{input,output,cached,thoughts,tool,total} (total == sum, and sometimes
not), model switches, gemini-2.5-pro / 3-pro-preview calls above 200k; .jsonl
sessions (header line, then records) where a repeated id revises an earlier record
(last wins, also when smaller), records without model (last model seen applies).

Everything is deterministic: same arguments, same bytes, same file mtimes (each
file's mtime is set to its newest record time).
"""

import argparse
import datetime
import hashlib
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# Providers' share of the byte budget.
BUDGET_SHARE = {"claude": 0.55, "codex": 0.25, "gemini": 0.20}
PRESETS = {
    # name: (total bytes, span in days, verbosity)
    "small": (300 * 1024, 5, "short"),
    "medium": (8 * 1024 * 1024, 30, "real"),
}
HUGE_LINE_BYTES = 16 * 1024 * 1024 + 4096  # just over the 16 MiB line limit of sources.md
BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
MS_PER_DAY = 86400000

WORDS = (
    "the a to of and in is it for on with that this be as are at by from or an was "
    "function file test build error fix update refactor module config parse value "
    "index return string number list map check run output input cache token model "
    "daemon socket store event usage record line offset session project query index "
    "schema table insert select migrate watcher timer loop write read flush commit "
    "naïve café résumé 日本語 テスト 数据 ünïcödé emoji-🙂 quote\"d back\\slash tab\tstop"
).split(" ")


# ----------------------------------------------------------------------------
# small helpers


def compact(obj):
    """The agents' own encoding: no spaces, raw UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def spaced(obj):
    """Non-compact JSON (what the Codex fixture ships); --full only."""
    return json.dumps(obj, ensure_ascii=False)


def fmt_ts(ms, micro_extra=None):
    """UTC ISO-8601 with milliseconds and Z; with micro_extra (0-999) six digits."""
    dt = EPOCH + datetime.timedelta(milliseconds=ms)
    base = dt.strftime("%Y-%m-%dT%H:%M:%S")
    if micro_extra is None:
        return "%s.%03dZ" % (base, ms % 1000)
    return "%s.%03d%03dZ" % (base, ms % 1000, micro_extra)


def day_of(ms):
    return fmt_ts(ms)[:10]


def ms_of_date(d):
    return int((datetime.datetime(d.year, d.month, d.day, tzinfo=datetime.timezone.utc) - EPOCH).total_seconds() * 1000)


class Ids:
    def __init__(self, rng):
        self.rng = rng

    def b62(self, n):
        return "".join(self.rng.choice(BASE62) for _ in range(n))

    def hexs(self, n):
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def uuid(self):
        h = self.hexs(32)
        return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], self.rng.choice("89ab"), h[17:20], h[20:32])

    def msg(self):
        return "msg_01" + self.b62(22)

    def req(self):
        return "req_011C" + self.b62(20)

    def toolu(self):
        return "toolu_01" + self.b62(22)

    def call(self):
        return "call_" + self.b62(24)


class Text:
    """Deterministic prose; 'short' keeps golden corpora small, 'real' sizes lines like the agents."""

    def __init__(self, rng, verbosity):
        self.rng = rng
        self.verbosity = verbosity

    def words(self, lo, hi):
        n = self.rng.randint(lo, hi)
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def prompt(self):
        return self.words(3, 18) if self.verbosity == "short" else self.words(5, 120)

    def reply(self):
        return self.words(4, 30) if self.verbosity == "short" else self.words(20, 400)

    def tool_output(self):
        if self.verbosity == "short":
            return self.words(3, 25)
        # mostly small, sometimes a big file dump, as real tool results are
        r = self.rng.random()
        if r < 0.7:
            return self.words(10, 200)
        if r < 0.95:
            return self.words(300, 2500)
        return self.words(4000, 12000)


class Corpus:
    """Files as lists of byte lines; written once at the end, in sorted order."""

    def __init__(self):
        self.files = {}  # relpath -> bytearray
        self.mtime_ms = {}  # relpath -> ms
        self.provider_bytes = {"claude": 0, "codex": 0, "gemini": 0}

    def _provider(self, path):
        return path.split("/", 1)[0]

    def add_line(self, path, text, ms=None, newline=True):
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        if newline:
            data += b"\n"
        self.files.setdefault(path, bytearray()).extend(data)
        self.provider_bytes[self._provider(path)] += len(data)
        if ms is not None:
            self.mtime_ms[path] = max(self.mtime_ms.get(path, 0), ms)

    def set_file(self, path, data, ms):
        old = self.files.get(path)
        if old is not None:
            self.provider_bytes[self._provider(path)] -= len(old)
        self.files[path] = bytearray(data)
        self.provider_bytes[self._provider(path)] += len(data)
        self.mtime_ms[path] = ms

    def write(self, out):
        for rel in sorted(self.files):
            full = os.path.join(out, *rel.split("/"))
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(self.files[rel])
            ms = self.mtime_ms.get(rel)
            if ms:
                os.utime(full, ns=(ms * 1000000, ms * 1000000))


class Clock:
    """Session start times inside the corpus window; some forced just before midnight."""

    def __init__(self, rng, base_ms, span_days):
        self.rng = rng
        self.base_ms = base_ms
        self.span_days = span_days

    def start(self, near_midnight=False):
        day = self.rng.randrange(self.span_days)
        if near_midnight:
            # 23:40-23:55 UTC, so that the session (and often a response) crosses midnight
            offset = (23 * 3600 + self.rng.randint(40 * 60, 55 * 60)) * 1000
        else:
            offset = self.rng.randint(6 * 3600, 22 * 3600) * 1000
        return self.base_ms + day * MS_PER_DAY + offset + self.rng.randint(0, 999)


class Ctx:
    def __init__(self, provider, seed, opts, corpus, clock_seed_ms, span_days):
        self.rng = random.Random("%d:%s" % (seed, provider))
        self.ids = Ids(self.rng)
        self.text = Text(self.rng, opts.verbosity)
        self.corpus = corpus
        self.opts = opts
        self.clock = Clock(self.rng, clock_seed_ms, span_days)
        self.budget = int(opts.total_bytes * BUDGET_SHARE[provider])
        self.full = opts.mode == "full"

    def bytes_used(self, provider):
        return self.corpus.provider_bytes[provider]


def cut_line(rng, line):
    """A line cut somewhere in its middle (a torn write)."""
    b = line.encode("utf-8")
    return b[: rng.randint(5, max(6, len(b) - 5))]


# ----------------------------------------------------------------------------
# Claude Code

CLAUDE_ERAS = {
    # era: (versions, models)
    "legacy": (["0.2.105", "0.2.118", "0.2.126"], ["claude-3-7-sonnet-20250219", "claude-3-5-haiku-20241022"]),
    "v1": (["1.0.17", "1.0.31", "1.0.44", "1.0.58", "1.0.72"],
           ["claude-sonnet-4-20250514", "claude-opus-4-20250514", "claude-opus-4-1-20250805"]),
    "v2": (["2.0.14", "2.0.28", "2.0.37", "2.0.55"],
           ["claude-sonnet-4-5-20250929", "claude-sonnet-4-20250514", "claude-opus-4-1-20250805",
            "claude-haiku-4-5-20251001"]),
    "v21": (["2.1.3", "2.1.19", "2.1.42"],
            ["claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8", "claude-sonnet-4-6",
             "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929"]),
}
CLAUDE_SUB_MODELS = {
    "legacy": "claude-3-5-haiku-20241022", "v1": "claude-3-5-haiku-20241022",
    "v2": "claude-haiku-4-5-20251001", "v21": "claude-haiku-4-5-20251001",
}
TIERED_CLAUDE = ("claude-sonnet-4-20250514", "claude-sonnet-4-5-20250929")
FAST_CAPABLE = ("claude-opus-4-6", "claude-opus-4-7", "claude-opus-4-8")
PROJECT_NAMES = ["ai-music", "etl-daemon", "webshop", "notes", "infra", "ml-lab", "docs-site", "game", "cli-tools",
                 "billing", "auth", "mobile-app"]
USERS = ["me", "dev", "alice", "bob"]

# Forced Claude sessions: every corpus, whatever its size, exercises each case.
CLAUDE_FORCED = [
    dict(era="v1", model="claude-sonnet-4-20250514", midnight=True, straddle=True, summary=True, style="same",
         project=0),
    dict(era="v2", model="claude-sonnet-4-5-20250929", long_context=True, subagents=1, progress=True, btw=True,
         project=0),
    dict(era="v21", model="claude-opus-4-6", fast=True, one_hour=True, synthetic=True, project=1, midnight=True),
    dict(era="legacy", model="claude-3-7-sonnet-20250219", project=2, midnight=True),
    dict(era="v21", model="claude-opus-4-8", fast=True, alt_model="claude-opus-4-7", continuation=True, project=1,
         btw=True),
    dict(era="v2", model="claude-sonnet-4-20250514", huge_components=True, subagents=2, progress=False, project=2),
    dict(era="v1", model="claude-opus-4-1-20250805", unknown_model=True, style="grow", project=0,
         continuation=True),
    dict(era="v21", model="claude-opus-4-7", fast=True, one_hour=True, subagents=1, progress=True, midnight=True,
         straddle=True, project=2),
    dict(era="v1", model="claude-opus-4-20250514", subagents=1, progress=False, sub_model="claude-3-5-haiku-20241022",
         project=1),
    dict(era="v21", model="claude-sonnet-4-6", alt_model="claude-opus-4-5-20251101", subagents=1, progress=True,
         project=0),
]


class ClaudeSession:
    def __init__(self, gen, project, sc, start_ms):
        self.g = gen
        self.ctx = gen.ctx
        self.rng = gen.ctx.rng
        self.ids = gen.ctx.ids
        self.project = project
        self.sc = sc
        self.era = sc["era"]
        self.sid = self.ids.uuid()
        self.version = self.rng.choice(CLAUDE_ERAS[self.era][0])
        self.model = sc.get("model") or self.rng.choice(CLAUDE_ERAS[self.era][1])
        self.path = "claude/projects/%s/%s.jsonl" % (project["slug"], self.sid)
        self.t = start_ms
        self.parent = None
        self.lines = []  # (record dict or raw bytes, ms, kind) for later copies
        self.responses = []  # final chunks of main responses: (record, ms)
        self.context = 0
        self.fast = bool(sc.get("fast")) and self.model in FAST_CAPABLE and self.era == "v21"
        self.one_hour = bool(sc.get("one_hour"))
        self.pending_task = None

    # -- line building

    def base(self, sidechain=False, agent_id=None):
        rec = {"parentUuid": self.parent, "isSidechain": sidechain, "userType": "external",
               "cwd": self.project["cwd"], "sessionId": self.sid, "version": self.version}
        if self.era != "legacy":
            rec["gitBranch"] = self.project["branch"]
        if agent_id:
            rec["agentId"] = agent_id
        return rec

    def emit(self, rec, ms, path=None, raw=None, newline=True):
        path = path or self.path
        if raw is not None:
            self.ctx.corpus.add_line(path, raw, ms, newline)
        else:
            self.ctx.corpus.add_line(path, compact(rec), ms, newline)
        if path == self.path:
            self.lines.append((rec, ms))

    def tick(self, lo, hi):
        self.t += self.rng.randint(lo, hi)
        return self.t

    def user_line(self, content, sidechain=False, agent_id=None, path=None, tool_result=None):
        rec = self.base(sidechain, agent_id)
        rec["type"] = "user"
        if tool_result is not None:
            rec["message"] = {"role": "user", "content": [
                {"tool_use_id": tool_result, "type": "tool_result", "content": content}]}
        else:
            rec["message"] = {"role": "user", "content": content}
        rec["uuid"] = self.ids.uuid()
        rec["timestamp"] = fmt_ts(self.t)
        self.parent = rec["uuid"] if path is None else self.parent
        self.emit(rec, self.t, path)
        return rec

    def usage_for(self, model, final_out, huge=None):
        rng = self.rng
        if self.sc.get("long_context") and self.context < 150000:
            self.context = rng.randint(150000, 190000)
        cache_read = self.context
        create = rng.randint(200, 9000)
        inp = rng.randint(1, 40)
        if huge == "input":
            inp = rng.randint(201000, 260000)
        elif huge == "create":
            create = rng.randint(205000, 240000)
        elif huge == "read":
            cache_read = rng.randint(210000, 420000)
        self.context = min(self.context + create + final_out, 900000)
        u = {"input_tokens": inp, "cache_creation_input_tokens": create, "cache_read_input_tokens": cache_read}
        if self.era in ("v2", "v21") or (self.era == "v1" and self.version >= "1.0.58"):
            one_h = 0
            if self.one_hour:
                one_h = create if rng.random() < 0.5 else rng.randint(0, create)
            u["cache_creation"] = {"ephemeral_5m_input_tokens": create - one_h, "ephemeral_1h_input_tokens": one_h}
        u["output_tokens"] = final_out
        if self.era in ("v2", "v21"):
            u["server_tool_use"] = {"web_search_requests": 0, "web_fetch_requests": 0}
        u["service_tier"] = "standard"
        if self.era == "v21":
            u["speed"] = "fast" if (self.fast and model in FAST_CAPABLE) else "standard"
        return u

    def chunk_usages(self, final_usage, n, style):
        out = []
        fo = final_usage["output_tokens"]
        for j in range(n):
            u = json.loads(json.dumps(final_usage))
            if style == "grow" and j < n - 1:
                u["output_tokens"] = max(1, (fo * (j + 1)) // (n + 1))
            out.append(u)
        return out

    def response(self, model=None, sidechain=False, agent_id=None, path=None, n_chunks=None, huge=None,
                 want_tool=True, progress=False, at_ms=None):
        """One model response, streamed as chunks; returns (final record, tool_use id or None)."""
        rng = self.rng
        full = self.ctx.full
        model = model or self.model
        mid = self.ids.msg()
        legacy = self.era == "legacy"
        rid = None if legacy else self.ids.req()
        n = n_chunks or rng.choice([1, 1, 2, 2, 3, 4])
        style = self.sc.get("style") or ("same" if (self.era == "v1" and rng.random() < 0.4) else "grow")
        final_out = rng.randint(5, 1800)
        usage = self.usage_for(model, final_out, huge)
        usages = self.chunk_usages(usage, n, style)
        tool_id = None
        # legacy (no requestId) chunks must share one timestamp to stay ccusage-compatible
        idless_same_ts = legacy and not (full and rng.random() < 0.5)
        if at_ms is not None and at_ms > self.t:
            self.t = at_ms
            ts0 = at_ms
        else:
            ts0 = self.tick(800, 9000)
        final = None
        for j in range(n):
            ms = ts0 if (idless_same_ts or j == 0) else self.tick(150, 4000)
            if want_tool and j == n - 1 and rng.random() < 0.6:
                tool_id = self.ids.toolu()
                block = {"type": "tool_use", "id": tool_id, "name": rng.choice(["Bash", "Read", "Edit", "Grep"]),
                         "input": {"command": self.ctx.text.words(2, 8)}}
            else:
                block = {"type": "text", "text": self.ctx.text.reply()}
            rec = self.base(sidechain, agent_id)
            msg = {"id": mid, "type": "message", "role": "assistant", "model": model, "content": [block],
                   "stop_reason": None, "stop_sequence": None, "usage": usages[j]}
            rec["message"] = msg
            if rid is not None:
                rec["requestId"] = rid
            rec["type"] = "assistant"
            rec["uuid"] = self.ids.uuid()
            micro = None
            if full and rng.random() < 0.05:
                micro = rng.randint(0, 999)
            rec["timestamp"] = fmt_ts(ms, micro)
            if legacy:
                rec["costUSD"] = round(self.g.claude_cost_hint(model, usages[j]), 8)
            if path is None:
                self.parent = rec["uuid"]
            raw = None
            if full and rng.random() < 0.03:
                raw = spaced(rec)  # non-compact: etld reads it, ccusage does not
            self.emit(rec, ms, path, raw)
            if progress and path is not None:
                self.g.progress_line(self, rec, ms, agent_id)
            final = rec
        if path is None:
            self.responses.append((final, self.t))
        return final, tool_id

    def synthetic_line(self):
        rec = self.base()
        rec["message"] = {"id": self.ids.uuid(), "model": "<synthetic>", "role": "assistant",
                          "stop_reason": "stop_sequence", "stop_sequence": "", "type": "message",
                          "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0,
                                    "cache_read_input_tokens": 0,
                                    "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                                    "service_tier": None,
                                    "cache_creation": {"ephemeral_1h_input_tokens": 0,
                                                       "ephemeral_5m_input_tokens": 0}},
                          "content": [{"type": "text", "text": "API Error: 529 Overloaded"}]}
        rec["type"] = "assistant"
        rec["uuid"] = self.ids.uuid()
        rec["timestamp"] = fmt_ts(self.tick(500, 3000))
        rec["isApiErrorMessage"] = True
        self.parent = rec["uuid"]
        self.emit(rec, self.t)


class ClaudeGen:
    def __init__(self, ctx):
        self.ctx = ctx
        self.rng = ctx.rng
        self.projects = []
        self.sessions_by_project = {}
        self.prices = None

    def claude_cost_hint(self, model, usage):
        """costUSD for legacy lines: a plausible figure (the record's own cost is what counts)."""
        rates = {"claude-3-7-sonnet-20250219": (3e-6, 15e-6, 3.75e-6, 0.3e-6),
                 "claude-3-5-haiku-20241022": (0.8e-6, 4e-6, 1e-6, 0.08e-6)}.get(model, (3e-6, 15e-6, 3.75e-6, 0.3e-6))
        return (usage["input_tokens"] * rates[0] + usage["output_tokens"] * rates[1]
                + usage.get("cache_creation_input_tokens", 0) * rates[2]
                + usage.get("cache_read_input_tokens", 0) * rates[3])

    def make_projects(self, n):
        names = self.rng.sample(PROJECT_NAMES, n)
        for name in names:
            user = self.rng.choice(USERS)
            cwd = "/Users/%s/dev/%s" % (user, name)
            slug = cwd.replace("/", "-").replace(".", "-")
            self.projects.append({"slug": slug, "cwd": cwd, "branch": self.rng.choice(["main", "dev", "feat/x"])})

    def progress_line(self, sess, inner_rec, ms, agent_id):
        """agent_progress line in the main transcript wrapping a subagent response (same ids)."""
        inner = {"type": "assistant", "message": inner_rec["message"], "requestId": inner_rec.get("requestId"),
                 "uuid": inner_rec["uuid"], "timestamp": inner_rec["timestamp"]}
        if inner["requestId"] is None:
            del inner["requestId"]
        outer_ms = ms + self.rng.randint(2, 60)
        if day_of(outer_ms) != day_of(ms):
            outer_ms = ms  # keep the outer line on the inner record's day (see bench/README.md)
        rec = sess.base()
        rec["type"] = "progress"
        rec["data"] = {"message": inner, "normalizedMessages": [], "type": "agent_progress",
                       "prompt": "subtask", "agentId": agent_id}
        rec["toolUseID"] = "agent_msg_" + sess.ids.b62(20)
        rec["parentToolUseID"] = sess.pending_task or sess.ids.toolu()
        rec["uuid"] = sess.ids.uuid()
        rec["timestamp"] = fmt_ts(outer_ms)
        sess.emit(rec, outer_ms)

    FULL_KINDS = ["malformed", "negative", "no_zone", "null_req", "bad_version", "null_in_string", "bad_utf8",
                  "idless_chunks"]

    def full_mode_lines(self, sess, kind=None):
        """Lines only etld is specified to handle; appended mid-file (never last)."""
        rng = self.rng
        ids = sess.ids
        kind = kind or rng.choice(self.FULL_KINDS)
        if kind == "malformed":
            rec = sess.base()
            rec.update({"type": "user", "message": {"role": "user", "content": sess.ctx.text.prompt()},
                        "uuid": ids.uuid(), "timestamp": fmt_ts(sess.tick(100, 900))})
            self.ctx.corpus.add_line(sess.path, cut_line(rng, compact(rec)), sess.t)
        elif kind in ("negative", "no_zone", "null_req", "bad_version"):
            rec = sess.base()
            u = sess.usage_for(sess.model, rng.randint(5, 200))
            if kind == "negative":
                u["output_tokens"] = -rng.randint(1, 50)
            rec["message"] = {"id": ids.msg(), "type": "message", "role": "assistant", "model": sess.model,
                              "content": [], "stop_reason": None, "stop_sequence": None, "usage": u}
            rec["requestId"] = None if kind == "null_req" else ids.req()
            rec["type"] = "assistant"
            rec["uuid"] = ids.uuid()
            ms = sess.tick(100, 900)
            rec["timestamp"] = fmt_ts(ms)[:19] if kind == "no_zone" else fmt_ts(ms)
            if kind == "bad_version":
                rec["version"] = "beta"
            self.ctx.corpus.add_line(sess.path, compact(rec), ms)
        elif kind == "null_in_string":
            # a valid response whose text mentions "requestId":null: etld counts it, ccusage drops it
            rec = sess.base()
            u = sess.usage_for(sess.model, rng.randint(5, 200))
            rec["message"] = {"id": ids.msg(), "type": "message", "role": "assistant", "model": sess.model,
                              "content": [{"type": "text", "text": 'log: {"requestId":null} seen'}],
                              "stop_reason": None, "stop_sequence": None, "usage": u}
            rec["requestId"] = ids.req()
            rec["type"] = "assistant"
            rec["uuid"] = ids.uuid()
            rec["timestamp"] = fmt_ts(sess.tick(100, 900))
            sess.emit(rec, sess.t)
        elif kind == "bad_utf8":
            rec = sess.base()
            rec.update({"type": "user", "message": {"role": "user", "content": "@@BAD@@ " + sess.ctx.text.prompt()},
                        "uuid": ids.uuid(), "timestamp": fmt_ts(sess.tick(100, 900))})
            line = compact(rec).encode("utf-8").replace(b"@@BAD@@", b"\xff\xfe\xc3(")
            self.ctx.corpus.add_line(sess.path, line, sess.t)
        elif kind == "idless_chunks":
            # chunks of one response without requestId at different times: one event for etld
            mid = ids.msg()
            u = sess.usage_for(sess.model, rng.randint(50, 900))
            for j, cu in enumerate(sess.chunk_usages(u, 3, "grow")):
                rec = sess.base()
                rec["message"] = {"id": mid, "type": "message", "role": "assistant", "model": sess.model,
                                  "content": [{"type": "text", "text": sess.ctx.text.reply()}],
                                  "stop_reason": None, "stop_sequence": None, "usage": cu}
                rec["type"] = "assistant"
                rec["uuid"] = ids.uuid()
                rec["timestamp"] = fmt_ts(sess.tick(200, 2000))
                sess.emit(rec, sess.t)

    def subagent(self, sess, n_resp, progress):
        """A Task subagent: its own transcript (isSidechain true), mirrored by progress lines when asked."""
        rng = self.rng
        agent_id = sess.ids.hexs(8)
        path = "claude/projects/%s/%s/subagents/agent-%s.jsonl" % (sess.project["slug"], sess.sid, agent_id)
        task_id = sess.ids.toolu()
        sess.pending_task = task_id
        model = CLAUDE_SUB_MODELS[sess.era] if rng.random() < 0.6 else sess.model
        model = sess.sc.get("sub_model", model)
        saved_parent, saved_ctx = sess.parent, sess.context
        sess.parent = None
        sess.context = rng.randint(5000, 20000)
        sess.user_line(sess.ctx.text.prompt(), sidechain=True, agent_id=agent_id, path=path)
        for _ in range(n_resp):
            sess.response(model=model, sidechain=True, agent_id=agent_id, path=path, progress=progress)
            if rng.random() < 0.5:
                sess.tick(200, 3000)
                sess.user_line(sess.ctx.text.tool_output(), sidechain=True, agent_id=agent_id, path=path,
                               tool_result=sess.ids.toolu())
        sess.parent, sess.context = saved_parent, saved_ctx
        sess.pending_task = None
        sess.tick(100, 900)
        sess.user_line(sess.ctx.text.tool_output(), tool_result=task_id)

    def btw_replay(self, sess):
        """/btw side question: a sidechain transcript replaying main responses (same message.id)."""
        rng = self.rng
        if not sess.responses:
            return
        agent_id = sess.ids.hexs(8)
        path = "claude/projects/%s/%s/subagents/agent-%s.jsonl" % (sess.project["slug"], sess.sid, agent_id)
        picks = rng.sample(sess.responses, min(len(sess.responses), rng.randint(1, 3)))
        t = sess.t + rng.randint(1000, 20000)
        for final, _ms in picks:
            rec = json.loads(json.dumps(final))
            rec["isSidechain"] = True
            rec["agentId"] = agent_id
            rec["uuid"] = sess.ids.uuid()
            how = rng.choice(["same", "other", "none"])
            if "requestId" in rec:
                if how == "other":
                    rec["requestId"] = sess.ids.req()
                elif how == "none":
                    del rec["requestId"]
            if rng.random() < 0.5:  # heavier replay: still never wins over the main response
                rec["message"]["usage"]["output_tokens"] += rng.randint(1, 500)
            t += rng.randint(100, 2000)
            rec["timestamp"] = fmt_ts(t)
            self.ctx.corpus.add_line(path, compact(rec), t)
        sess.t = max(sess.t, t)

    def copy_tail(self, sess, prev):
        """A continued session starts with copies of the previous transcript's tail (same ids)."""
        tail = [(r, ms) for (r, ms) in prev.lines[-8:]
                if isinstance(r, dict) and r.get("type") in ("user", "assistant")
                and (r.get("type") == "user" or r.get("requestId"))
                and r.get("message", {}).get("model") != "<synthetic>"]
        for rec, ms in tail:
            c = json.loads(json.dumps(rec))
            c["sessionId"] = sess.sid
            c["version"] = sess.version
            sess.emit(c, ms)
            sess.t = max(sess.t, ms)
        sess.parent = tail[-1][0]["uuid"] if tail else None

    def session(self, sc):
        rng = self.rng
        ctx = self.ctx
        project = self.projects[sc["project"] % len(self.projects)] if "project" in sc else rng.choice(self.projects)
        prev_list = self.sessions_by_project.setdefault(project["slug"], [])
        start = ctx.clock.start(sc.get("midnight", False))
        if sc.get("continuation") and prev_list:
            start = max(start, prev_list[-1].t + rng.randint(60000, 3600000))
        sess = ClaudeSession(self, project, sc, start)
        if sc.get("summary"):
            ctx.corpus.add_line(sess.path, compact({"type": "summary", "summary": ctx.text.words(3, 8),
                                                     "leafUuid": sess.ids.uuid()}), start)
        if sc.get("continuation") and prev_list:
            self.copy_tail(sess, prev_list[-1])
        n_turns = sc.get("turns") or rng.randint(2, 6 if ctx.opts.verbosity == "short" else 14)
        sub_left = sc.get("subagents", 1 if (sess.era in ("v2", "v21") and rng.random() < 0.3) else 0)
        progress = sc.get("progress", sess.era in ("v2", "v21") and rng.random() < 0.6)
        huge_cycle = ["input", "create", "read"] if sc.get("huge_components") else []
        synthetic_done = False
        for turn in range(n_turns):
            sess.tick(2000, 90000)
            sess.user_line(ctx.text.prompt())
            if sc.get("synthetic") and not synthetic_done or (rng.random() < 0.03 and sess.era != "legacy"):
                sess.synthetic_line()
                synthetic_done = True
                sess.tick(1000, 5000)
                sess.user_line(ctx.text.prompt())
            for k in range(rng.randint(1, 4)):
                model = sess.model
                if sc.get("alt_model") and rng.random() < 0.4:
                    model = sc["alt_model"]
                if sc.get("unknown_model") and turn == 0 and k == 0:
                    model = "claude-2.1"
                huge = None
                if huge_cycle and model in TIERED_CLAUDE:
                    huge = huge_cycle.pop(0)
                at = None
                if sc.get("straddle") and turn == 0 and k == 0:
                    # chunks on both sides of UTC midnight: the winning chunk decides the day
                    at = (sess.t // MS_PER_DAY + 1) * MS_PER_DAY - rng.randint(50, 140)
                final, tool_id = sess.response(model=model, huge=huge, at_ms=at, n_chunks=3 if at else None)
                if ctx.full and rng.random() < 0.08:
                    self.full_mode_lines(sess)
                if tool_id:
                    sess.tick(100, 5000)
                    sess.user_line(ctx.text.tool_output(), tool_result=tool_id)
            if sub_left and (turn == n_turns - 1 or rng.random() < 0.5):
                self.subagent(sess, rng.randint(1, 3), progress)
                sub_left -= 1
        while huge_cycle:  # the forced >200k components must appear even in a short session
            sess.response(huge=huge_cycle.pop(0), want_tool=False)
        if sc.get("btw"):
            self.btw_replay(sess)
        if ctx.full and sc.get("force_full"):
            for _ in range(3):
                self.full_mode_lines(sess)
        prev_list.append(sess)
        return sess

    def random_scenario(self):
        rng = self.rng
        era = rng.choices(["legacy", "v1", "v2", "v21"], [1, 3, 4, 4])[0]
        model = rng.choice(CLAUDE_ERAS[era][1])
        sc = dict(era=era, model=model)
        sc["midnight"] = rng.random() < 0.15
        sc["long_context"] = model in TIERED_CLAUDE and rng.random() < 0.25
        sc["fast"] = era == "v21" and model in FAST_CAPABLE and rng.random() < 0.35
        sc["one_hour"] = era in ("v2", "v21") and rng.random() < 0.3
        sc["btw"] = era in ("v2", "v21") and rng.random() < 0.15
        sc["continuation"] = rng.random() < 0.15 and era != "legacy"
        sc["summary"] = rng.random() < 0.2
        if era == "v21" and rng.random() < 0.3:
            sc["alt_model"] = rng.choice(CLAUDE_ERAS[era][1])
        return sc

    def huge_line(self, sess):
        rec = sess.base()
        rec.update({"type": "user", "message": {"role": "user", "content": "x" * HUGE_LINE_BYTES},
                    "uuid": sess.ids.uuid(), "timestamp": fmt_ts(sess.tick(100, 900))})
        self.ctx.corpus.add_line(sess.path, compact(rec), sess.t)

    def run(self):
        ctx = self.ctx
        n_projects = 3 if ctx.opts.verbosity == "short" else max(3, min(12, int(ctx.budget / (2 << 20)) + 3))
        self.make_projects(n_projects)
        all_sessions = []
        for sc in CLAUDE_FORCED:
            all_sessions.append(self.session(dict(sc)))
        if ctx.full:
            s = self.session(dict(era="v2", model="claude-sonnet-4-5-20250929", force_full=True, project=0))
            for kind in self.FULL_KINDS:  # every full-mode kind at least once
                self.full_mode_lines(s, kind)
            if ctx.opts.huge_lines:
                self.huge_line(s)
            s.response(want_tool=False)  # records after the odd lines still count
            all_sessions.append(s)
        while ctx.bytes_used("claude") < ctx.budget:
            all_sessions.append(self.session(self.random_scenario()))
        if ctx.full:
            # torn last lines: a few transcripts end in a line without its newline (pending, not skipped)
            for sess in self.rng.sample(all_sessions, min(3, len(all_sessions))):
                rec = sess.base()
                rec.update({"type": "user", "message": {"role": "user", "content": ctx.text.prompt()},
                            "uuid": sess.ids.uuid(), "timestamp": fmt_ts(sess.t + 1000)})
                ctx.corpus.add_line(sess.path, cut_line(self.rng, compact(rec)), sess.t + 1000, newline=False)


# ----------------------------------------------------------------------------
# Codex CLI

CODEX_MODELS = ["gpt-5-codex", "gpt-5.1-codex", "gpt-5.1-codex-mini", "gpt-5.2-codex", "gpt-5.4", "gpt-5"]
CODEX_VERSIONS_OLD = ["0.31.0", "0.36.0"]  # totals-only token_count
CODEX_VERSIONS_NEW = ["0.46.0", "0.58.0", "0.77.0", "0.121.0"]

CODEX_FORCED = [
    dict(era="new", model="gpt-5-codex", repeats=True, info_null=True, midnight=True),
    dict(era="old", model="gpt-5"),
    dict(era="new", model="gpt-5.4", long_context=True),
    dict(era="new", model="gpt-5.1-codex", switch="gpt-5.1-codex-mini", archived=True),
    dict(era="new", model=None, no_turn_context=True),  # gpt-5 fallback
    dict(era="new", model="gpt-5.2-codex", fork=True),
    dict(era="new", model="gpt-5-codex", nested_archive_copy=True),
    dict(era="old", model="gpt-5-codex", archived=True, midnight=True),
]


def codex_usage(inp, cached, out, reasoning):
    return {"input_tokens": inp, "cached_input_tokens": cached, "output_tokens": out,
            "reasoning_output_tokens": reasoning, "total_tokens": inp + out}


def add_usage(a, b):
    return {k: a[k] + b[k] for k in a}


class CodexGen:
    def __init__(self, ctx):
        self.ctx = ctx
        self.rng = ctx.rng
        self.ids = ctx.ids
        self.done = []  # (path, lines) of finished sessions, for forks and copies
        self.cwds = ["/Users/%s/dev/%s" % (self.rng.choice(USERS), n) for n in self.rng.sample(PROJECT_NAMES, 4)]

    def line(self, ms, typ, payload, micro=None):
        return {"timestamp": fmt_ts(ms, micro), "type": typ, "payload": payload}

    def session(self, sc):
        rng = self.rng
        ctx = self.ctx
        full = ctx.full
        t = ctx.clock.start(sc.get("midnight", False))
        sid = self.ids.uuid()
        era = sc["era"]
        version = rng.choice(CODEX_VERSIONS_OLD if era == "old" else CODEX_VERSIONS_NEW)
        cwd = rng.choice(self.cwds)
        lines = []  # (dict or raw bytes, ms, is_token_count)

        def add(rec, ms, raw=None, tc=False):
            lines.append((rec if raw is None else raw, ms, tc))

        meta = {"id": sid, "timestamp": fmt_ts(t), "cwd": cwd, "originator": "codex_cli_rs",
                "cli_version": version, "instructions": None, "source": "cli", "model_provider": "openai",
                "git": {"commit_hash": self.ids.hexs(40), "branch": "main",
                        "repository_url": "git@github.com:me/%s.git" % cwd.rsplit("/", 1)[1]}}
        parent = None
        if sc.get("fork") and self.done:
            parent = rng.choice(self.done)
            if era == "new":
                meta["forked_from_id"] = parent["sid"]
        add(self.line(t, "session_meta", meta), t)
        total = None
        model = sc.get("model") or rng.choice(CODEX_MODELS)
        if parent is not None:
            # copy the parent's history up to one of its token_count events (same timestamps, same numbers)
            tc_idx = [i for i, (_r, _m, tc) in enumerate(parent["lines"]) if tc]
            cut = rng.choice(tc_idx) if tc_idx else len(parent["lines"]) - 1
            for rec, ms, tc in parent["lines"][1:cut + 1]:
                add(rec, ms, tc=tc)
                t = max(t, ms)
            total = parent["totals"].get(cut)
            model = parent["models"].get(cut, model)
        if sc.get("info_null") or (era == "new" and rng.random() < 0.5):
            t += rng.randint(50, 500)
            add(self.line(t, "event_msg", {"type": "token_count", "info": None,
                                           "rate_limits": {"primary": {"used_percent": 0.0}}}), t, tc=False)
        totals_at = {}
        models_at = {}
        context = rng.randint(4000, 12000) if not sc.get("long_context") else rng.randint(200000, 250000)
        n_turns = rng.randint(2, 3 if ctx.opts.verbosity == "short" else 12)
        switched = False
        for turn in range(n_turns):
            t += rng.randint(3000, 120000)
            if sc.get("switch") and not switched and turn >= n_turns // 2:
                model = sc["switch"]
                switched = True
            if not sc.get("no_turn_context"):
                add(self.line(t, "turn_context", {"cwd": cwd, "approval_policy": "on-request",
                                                  "sandbox_policy": {"mode": "workspace-write"},
                                                  "model": model, "effort": rng.choice(["low", "medium", "high"]),
                                                  "summary": "auto"}), t)
            prompt = ctx.text.prompt()
            t += rng.randint(5, 50)
            add(self.line(t, "response_item", {"type": "message", "role": "user",
                                               "content": [{"type": "input_text", "text": prompt}]}), t)
            add(self.line(t, "event_msg", {"type": "user_message", "message": prompt, "images": []}), t)
            for call in range(rng.randint(1, 4)):
                t += rng.randint(1500, 40000)
                reasoning = rng.randint(0, 1200) if rng.random() < 0.7 else 0
                if reasoning:
                    add(self.line(t, "response_item", {"type": "reasoning", "summary": [
                        {"type": "summary_text", "text": ctx.text.reply()}], "content": None,
                        "encrypted_content": "gAAAAB" + self.ids.b62(rng.randint(40, 300))}), t)
                    add(self.line(t, "event_msg", {"type": "agent_reasoning", "text": ctx.text.reply()}), t)
                if rng.random() < 0.6:
                    cid = self.ids.call()
                    add(self.line(t, "response_item", {"type": "function_call", "name": "shell",
                                                       "arguments": compact({"command": ["bash", "-lc",
                                                                                         ctx.text.words(2, 6)]}),
                                                       "call_id": cid}), t)
                    t += rng.randint(100, 8000)
                    add(self.line(t, "response_item", {"type": "function_call_output", "call_id": cid,
                                                       "output": compact({"output": ctx.text.tool_output(),
                                                                          "metadata": {"exit_code": 0}})}), t)
                else:
                    reply = ctx.text.reply()
                    add(self.line(t, "response_item", {"type": "message", "role": "assistant",
                                                       "content": [{"type": "output_text", "text": reply}]}), t)
                    add(self.line(t, "event_msg", {"type": "agent_message", "message": reply}), t)
                new_in = rng.randint(200, 6000)
                inp = context + new_in
                cached = 0 if (call == 0 and turn == 0) else min(inp, int(context * rng.uniform(0.8, 1.0)))
                out = rng.randint(20, 2500) + reasoning
                if rng.random() < 0.02 and (era == "new" or full):
                    # cached above input: clamped to input. Not in totals-only sessions of a
                    # compatible corpus: there ccusage diffs clamped totals, sources.md raw ones
                    cached = inp + rng.randint(1, 50)
                last = codex_usage(inp, cached, out, reasoning)
                total = last if total is None else add_usage(total, last)
                context = inp + out
                t += rng.randint(20, 300)
                bad_ts = full and era == "new" and rng.random() < 0.04
                micro = rng.randint(0, 999) if (full and rng.random() < 0.05) else None
                info = {"model_context_window": 272000}
                if era == "old":
                    info = {"total_token_usage": total, "model_context_window": 272000}
                else:
                    info = {"total_token_usage": total, "last_token_usage": last, "model_context_window": 272000}
                rec = self.line(t, "event_msg", {"type": "token_count", "info": info,
                                                 "rate_limits": {"primary": {"used_percent": round(rng.uniform(0, 90), 1),
                                                                             "window_minutes": 300}}}, micro)
                if bad_ts:
                    # skipped and counted; its total never matters, since every event of this era
                    # carries last_token_usage and no repeat of it follows
                    rec["timestamp"] = "not-a-time"
                    add(rec, t)
                    continue
                add(rec, t, tc=True)
                totals_at[len(lines) - 1] = dict(total)
                models_at[len(lines) - 1] = model
                if sc.get("repeats") or rng.random() < 0.25:
                    t += rng.randint(1, 80)
                    rep = json.loads(json.dumps(rec))
                    rep["timestamp"] = fmt_ts(t)
                    add(rep, t, tc=True)
                    totals_at[len(lines) - 1] = dict(total)
                    models_at[len(lines) - 1] = model
        # file name from the start time, as Codex does
        start = lines[0][1]
        stamp = fmt_ts(start)[:19].replace(":", "-")
        name = "rollout-%s-%s.jsonl" % (stamp, sid)
        y, m, d = stamp[:4], stamp[5:7], stamp[8:10]
        if sc.get("archived"):
            path = "codex/archived_sessions/%s" % name
        else:
            path = "codex/sessions/%s/%s/%s/%s" % (y, m, d, name)
        for rec, ms, _tc in lines:
            if isinstance(rec, (bytes, bytearray)):
                ctx.corpus.add_line(path, rec, ms)
            elif full and rng.random() < 0.03:
                ctx.corpus.add_line(path, spaced(rec), ms)
            else:
                ctx.corpus.add_line(path, compact(rec), ms)
            if full and rng.random() < 0.01:
                ctx.corpus.add_line(path, cut_line(rng, compact(rec)), ms)  # torn line mid-file: skipped
        if sc.get("nested_archive_copy"):
            # the same relative path under archived_sessions/: the sessions/ copy wins (same events anyway)
            ctx.corpus.set_file("codex/archived_sessions/%s/%s/%s/%s" % (y, m, d, name),
                                bytes(ctx.corpus.files[path]), lines[-1][1])
        self.done.append({"sid": sid, "lines": lines, "totals": totals_at, "models": models_at, "path": path})
        return path, lines

    def random_scenario(self):
        rng = self.rng
        era = "old" if rng.random() < 0.15 else "new"
        sc = dict(era=era, model=rng.choice(CODEX_MODELS))
        sc["midnight"] = rng.random() < 0.15
        sc["archived"] = rng.random() < 0.2
        sc["long_context"] = sc["model"] == "gpt-5.4" and rng.random() < 0.5
        sc["fork"] = rng.random() < 0.1
        if rng.random() < 0.2:
            sc["switch"] = rng.choice(CODEX_MODELS)
        if rng.random() < 0.05:
            sc["no_turn_context"] = True
        return sc

    def run(self):
        ctx = self.ctx
        paths = []
        for sc in CODEX_FORCED:
            paths.append(self.session(dict(sc))[0])
        while ctx.bytes_used("codex") < ctx.budget:
            paths.append(self.session(self.random_scenario())[0])
        if ctx.full:
            ctx.corpus.set_file("codex/config.toml", b'model = "gpt-5-codex"\nservice_tier = "fast"\n', 0)
            if ctx.opts.huge_lines:
                p = paths[0]
                big = {"timestamp": fmt_ts(ctx.clock.base_ms), "type": "response_item",
                       "payload": {"type": "function_call_output", "call_id": "call_huge",
                                   "output": "y" * HUGE_LINE_BYTES}}
                ctx.corpus.add_line(p, compact(big), None)
            for p in self.rng.sample(paths, min(3, len(paths))):
                ctx.corpus.add_line(p, b'{"timestamp":"2099-01-01T00:00:00.000Z","type":"event_msg","payload":{"ty',
                                    None, newline=False)


# ----------------------------------------------------------------------------
# Gemini CLI

GEMINI_MODELS = ["gemini-2.5-pro", "gemini-2.5-flash", "gemini-3-pro-preview", "gemini-3-flash-preview",
                 "gemini-2.5-flash-lite"]
GEMINI_TIERED = ("gemini-2.5-pro", "gemini-3-pro-preview")

GEMINI_FORCED = [
    dict(fmt="json", pretty=True, model="gemini-2.5-pro", long_context=True, midnight=True),
    dict(fmt="json", pretty=False, model="gemini-2.5-flash", alt_model="gemini-2.5-flash-lite"),
    dict(fmt="jsonl", model="gemini-2.5-pro", revisions=True, omit_model=True),
    dict(fmt="jsonl", model="gemini-3-pro-preview", long_context=True, revisions=True, midnight=True),
    dict(fmt="json", pretty=True, model="gemini-3-flash-preview", total_mismatch=True),
]


class GeminiGen:
    def __init__(self, ctx):
        self.ctx = ctx
        self.rng = ctx.rng
        self.ids = ctx.ids
        self.projects = []
        for name in self.rng.sample(PROJECT_NAMES, 3):
            path = "/home/%s/src/%s" % (self.rng.choice(USERS), name)
            self.projects.append(hashlib.sha256(path.encode()).hexdigest())

    def tokens(self, context, tool_used, mismatch):
        rng = self.rng
        new = rng.randint(100, 5000)
        inp = context + new
        cached = int(context * rng.uniform(0.5, 0.95)) if (context > 8000 and rng.random() < 0.7) else 0
        out = rng.randint(5, 1500)
        thoughts = rng.randint(0, 1200) if rng.random() < 0.7 else 0
        tool = rng.randint(10, 600) if tool_used else 0
        total = inp + out + thoughts + tool
        if mismatch:
            total = inp + out  # an older CLI's total: not the sum, so cached is not taken out of input
        return {"input": inp, "output": out, "cached": cached, "thoughts": thoughts, "tool": tool, "total": total}

    def session(self, sc):
        rng = self.rng
        ctx = self.ctx
        full = ctx.full
        project = rng.choice(self.projects)
        t = ctx.clock.start(sc.get("midnight", False))
        sid = self.ids.uuid()
        model = sc.get("model") or rng.choice(GEMINI_MODELS)
        context = rng.randint(185000, 215000) if sc.get("long_context") else rng.randint(3000, 9000)
        messages = []  # message dicts in order; jsonl revisions listed separately
        revisions = []  # (index in messages, earlier version dict)
        n_turns = rng.randint(2, 5 if ctx.opts.verbosity == "short" else 12)
        for turn in range(n_turns):
            t += rng.randint(5000, 100000)
            messages.append({"id": self.ids.uuid(), "timestamp": fmt_ts(t), "type": "user",
                             "content": ctx.text.prompt()})
            for k in range(rng.randint(1, 3)):
                t += rng.randint(1500, 30000)
                m = model
                if sc.get("alt_model") and rng.random() < 0.4:
                    m = sc["alt_model"]
                elif rng.random() < 0.1:
                    m = "gemini-2.5-flash"
                tool_used = rng.random() < 0.5
                toks = self.tokens(context, tool_used, sc.get("total_mismatch") and rng.random() < 0.5
                                   or rng.random() < 0.05)
                context = min(context + toks["output"] + rng.randint(100, 3000), 950000)
                msg = {"id": self.ids.uuid(), "timestamp": fmt_ts(t), "type": "gemini", "content": ctx.text.reply(),
                       "thoughts": [{"subject": ctx.text.words(1, 4), "description": ctx.text.words(3, 20),
                                     "timestamp": fmt_ts(t - 200)}] if toks["thoughts"] else [],
                       "tokens": toks, "model": m}
                if tool_used:
                    msg["toolCalls"] = [{"id": "run_shell_command-%d-%s" % (t, self.ids.hexs(8)),
                                         "name": "run_shell_command", "args": {"command": ctx.text.words(2, 6)},
                                         "result": [{"functionResponse": {"response": {
                                             "output": ctx.text.tool_output()}}}],
                                         "status": "success", "timestamp": fmt_ts(t + 100)}]
                messages.append(msg)
                if sc.get("fmt") == "jsonl" and (sc.get("revisions") and k == 0 or rng.random() < 0.15):
                    early = json.loads(json.dumps(msg))
                    early["content"] = early["content"][: len(early["content"]) // 2]
                    if rng.random() < 0.5:
                        del early["tokens"]  # first write before the usage came back
                    else:
                        # a revision may be smaller than the first write: the last one still wins
                        early["tokens"] = {k2: (v + rng.randint(1, 300)) for k2, v in toks.items()}
                    revisions.append((len(messages) - 1, early))
            if rng.random() < 0.1:
                t += rng.randint(100, 2000)
                messages.append({"id": self.ids.uuid(), "timestamp": fmt_ts(t), "type": "info",
                                 "content": "Request cancelled."})
        start_ts = messages[0]["timestamp"]
        stamp = start_ts[:16].replace(":", "-")
        last_ts = fmt_ts(t)
        base = "gemini/tmp/%s/chats/session-%s-%s" % (project, stamp, sid[:8])
        if sc.get("fmt") == "jsonl":
            path = base + ".jsonl"
            header = {"sessionId": sid, "projectHash": project, "startTime": start_ts, "lastUpdated": last_ts,
                      "kind": "main"}
            ctx.corpus.add_line(path, compact(header), t)
            rev_by_idx = {}
            for idx, early in revisions:
                rev_by_idx.setdefault(idx, []).append(early)
            last_model = None
            for idx, msg in enumerate(messages):
                for early in rev_by_idx.get(idx, []):
                    ctx.corpus.add_line(path, compact(early), t)
                out = dict(msg)
                if msg["type"] == "gemini":
                    if sc.get("omit_model") and last_model == msg["model"] and rng.random() < 0.7:
                        del out["model"]  # the last model seen in the file applies
                    last_model = msg["model"]
                if full and msg["type"] == "gemini" and rng.random() < 0.04:
                    out = dict(out)
                    del out["timestamp"]  # falls back to the header's startTime (ccusage: file mtime)
                ctx.corpus.add_line(path, compact(out), t)
                if full and rng.random() < 0.02:
                    ctx.corpus.add_line(path, cut_line(rng, compact(out)), t)
            if full and rng.random() < 0.3:
                ctx.corpus.add_line(path, b'{"id":"torn","type":"gemini","tok', t, newline=False)
        else:
            path = base + ".json"
            doc = {"sessionId": sid, "projectHash": project, "startTime": start_ts, "lastUpdated": last_ts,
                   "messages": messages}
            if sc.get("pretty", rng.random() < 0.7):
                data = json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")
            else:
                data = compact(doc).encode("utf-8")
            if sc.get("torn"):
                data = data[: len(data) * 2 // 3]  # caught mid-write: no record until it parses
            ctx.corpus.set_file(path, data, t)
        return path

    def random_scenario(self):
        rng = self.rng
        sc = dict(fmt="jsonl" if rng.random() < 0.4 else "json", model=rng.choice(GEMINI_MODELS))
        sc["pretty"] = rng.random() < 0.7
        sc["midnight"] = rng.random() < 0.15
        sc["long_context"] = sc["model"] in GEMINI_TIERED and rng.random() < 0.3
        sc["omit_model"] = sc["fmt"] == "jsonl" and rng.random() < 0.5
        if rng.random() < 0.2:
            sc["alt_model"] = rng.choice(GEMINI_MODELS)
        return sc

    def run(self):
        ctx = self.ctx
        for sc in GEMINI_FORCED:
            self.session(dict(sc))
        if ctx.full:
            self.session(dict(fmt="json", pretty=True, model="gemini-2.5-pro", torn=True))
        while ctx.bytes_used("gemini") < ctx.budget:
            self.session(self.random_scenario())


# ----------------------------------------------------------------------------


class Options:
    pass


def parse_args(argv):
    ap = argparse.ArgumentParser(description="Seeded corpus of Claude Code / Codex / Gemini CLI logs.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--preset", choices=sorted(PRESETS))
    size.add_argument("--size-mb", type=float)
    ap.add_argument("--providers", default="claude,codex,gemini")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--ccusage-compatible", dest="mode", action="store_const", const="compatible")
    mode.add_argument("--full", dest="mode", action="store_const", const="full")
    ap.add_argument("--huge-lines", action="store_true")
    ap.add_argument("--expected")
    ap.add_argument("--prices")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args(argv)
    provs = [p for p in a.providers.split(",") if p]
    for p in provs:
        if p not in BUDGET_SHARE:
            ap.error("unknown provider %r" % p)
    if a.huge_lines and a.mode != "full":
        ap.error("--huge-lines needs --full")
    o = Options()
    o.seed = a.seed
    o.out = a.out
    o.providers = provs
    o.mode = a.mode or "compatible"
    o.huge_lines = a.huge_lines
    o.expected = a.expected
    o.prices = a.prices
    o.quiet = a.quiet
    if a.size_mb is not None:
        o.total_bytes = int(a.size_mb * 1024 * 1024)
        o.span_days = int(max(5, min(120, a.size_mb * 2)))
        o.verbosity = "real"
        o.size_label = "size-mb=%g" % a.size_mb
    else:
        name = a.preset or "small"
        o.total_bytes, o.span_days, o.verbosity = PRESETS[name]
        o.size_label = "preset=" + name
    o.argv = list(argv)
    return o


def generate(o):
    corpus = Corpus()
    trng = random.Random("%d:time" % o.seed)
    base = ms_of_date(datetime.date(2025, 9, 1) + datetime.timedelta(days=trng.randrange(0, 150)))
    for prov, cls in (("claude", ClaudeGen), ("codex", CodexGen), ("gemini", GeminiGen)):
        if prov in o.providers:
            cls(Ctx(prov, o.seed, o, corpus, base, o.span_days)).run()
    return corpus


def main(argv=None):
    o = parse_args(sys.argv[1:] if argv is None else argv)
    if os.path.exists(o.out) and os.listdir(o.out):
        sys.exit("gen_corpus: %s exists and is not empty" % o.out)
    corpus = generate(o)
    corpus.write(o.out)
    if o.expected:
        sys.dont_write_bytecode = True
        sys.path.insert(0, HERE)
        import corpus_expect
        exp = corpus_expect.expect_corpus(corpus.files, corpus.mtime_ms, o.prices)
        exp["generator"] = {"args": o.argv, "mode": o.mode}
        with open(o.expected, "w") as f:
            json.dump(exp, f, indent=1, sort_keys=True)
            f.write("\n")
    if not o.quiet:
        n = len(corpus.files)
        total = sum(len(v) for v in corpus.files.values())
        per = ", ".join("%s %d KiB" % (p, corpus.provider_bytes[p] // 1024) for p in o.providers)
        sys.stderr.write("gen_corpus: seed %d %s %s: %d files, %d bytes (%s) -> %s\n"
                         % (o.seed, o.size_label, o.mode, n, total, per, o.out))


if __name__ == "__main__":
    main()
