#!/usr/bin/env python3
"""What etld must store for a corpus, computed from the rules of spec/sources.md.

A small, slow, independent reading of the spec, used by gen_corpus.py --expected
(and runnable alone: corpus_expect.py CORPUS_DIR [--prices FILE] > expected.json).
It exists for two reasons:

* ccusage-compatible corpora: its totals must equal ccusage's golden output, which
  checks the generator, the spec and ccusage against each other (compare.py
  --expected EXPECTED.json accepts it in place of a store);
* --full corpora, which ccusage cannot judge: tests compare the store with it.

Only what the generator writes is covered: one root per provider (relative
paths carry root index 0), no `--pricing` overrides. Per provider it reports rows
keyed (day, model, speed) with token sums, reasoning, cost and event count, the
number of skipped lines (malformed, invalid or too long), and notes (pending torn
last lines, lines with invalid UTF-8 that are not records, Gemini files that do
not parse).
"""

import datetime
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_LINE_BYTES = 16 * 1024 * 1024  # sources.md: longer lines are skipped and counted
FAST_MULTIPLIER = {"claude-opus-4-6": 6.0, "claude-opus-4-7": 6.0, "claude-opus-4-8": 2.0}
PRICE_ADDITIONS = {
    # sources.md, "Prices": what the LiteLLM snapshot lacks
    "claude-3-5-haiku-20241022": {"input_cost_per_token": 0.8e-6, "output_cost_per_token": 4e-6,
                                  "cache_creation_input_token_cost": 1.0e-6,
                                  "cache_read_input_token_cost": 0.08e-6},
}
TS_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})$")
VERSION_RE = re.compile(r"^\d+\.\d+\.\d+")
NULL_CHECKED = ("cwd", "version", "sessionId", "requestId", "costUSD", "isApiErrorMessage")


def default_prices_path():
    """The repository's embedded table when present, else the shared LiteLLM snapshot."""
    repo_table = os.path.join(HERE, "..", "data", "prices.json")
    if os.path.exists(repo_table):
        return repo_table
    shared = os.environ.get("ETLD_SHARED_DIR") or os.path.join(HERE, "..", "..", "shared")
    return os.path.join(shared, "data", "litellm-prices-2026-07-24.json")


class Prices:
    def __init__(self, path=None):
        with open(path or default_prices_path()) as f:
            self.table = json.load(f)
        for k, v in PRICE_ADDITIONS.items():
            self.table.setdefault(k, v)

    def lookup(self, model):
        if not model:
            return None, None
        cands = [model]
        stripped = re.sub(r"-\d{8}$", "", model)
        if stripped != model:
            cands.append(stripped)
        for c in list(cands):
            for p in ("anthropic/", "openai/", "gemini/", "vertex_ai/"):
                cands.append(p + c)
        for c in cands:
            if c in self.table and "input_cost_per_token" in self.table[c]:
                return c, self.table[c]
        return None, None


def norm_ts(s):
    """-> (normalised 'YYYY-MM-DDTHH:MM:SS.mmmZ', ok)."""
    if not isinstance(s, str):
        return None
    m = TS_RE.match(s)
    if not m:
        return None
    y, mo, d, h, mi, se, frac, zone = m.groups()
    try:
        dt = datetime.datetime(int(y), int(mo), int(d), int(h), int(mi), int(se))
    except ValueError:
        return None
    ms = int((frac or "0")[:3].ljust(3, "0"))
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        z = zone[1:].replace(":", "")
        dt -= sign * datetime.timedelta(hours=int(z[:2]), minutes=int(z[2:]))
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % ms


def is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def split_lines(data):
    """-> list of (offset, line bytes); a last piece without newline is pending, returned separately."""
    out = []
    pos = 0
    n = len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            return out, n - pos
        out.append((pos, bytes(data[pos:nl])))
        pos = nl + 1
    return out, 0


class Acc:
    def __init__(self):
        self.rows = {}
        self.skipped = 0
        self.notes = {}

    def note(self, k, n=1):
        self.notes[k] = self.notes.get(k, 0) + n

    def add(self, day, model, speed, inp, out, cr, cc, reasoning, cost):
        k = (day, model, speed)
        r = self.rows.setdefault(k, [0, 0, 0, 0, 0, 0.0, 0])
        r[0] += inp
        r[1] += out
        r[2] += cr
        r[3] += cc
        r[4] += reasoning
        r[5] += cost
        r[6] += 1

    def dump(self):
        rows = []
        for (day, model, speed), r in sorted(self.rows.items()):
            rows.append({"day": day, "model": model, "speed": speed, "input_tokens": r[0], "output_tokens": r[1],
                         "cache_read_tokens": r[2], "cache_create_tokens": r[3], "reasoning_tokens": r[4],
                         "cost_usd": r[5], "events": r[6]})
        return {"rows": rows, "events": sum(r["events"] for r in rows), "skipped_lines": self.skipped,
                "notes": self.notes}


def parse_json_line(line, acc):
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
        acc.note("invalid_utf8_lines")
    try:
        return json.loads(text)
    except ValueError:
        return None


# ----------------------------------------------------------------------------
# Claude


def tier(n, base, above, threshold=200000):
    if above is None:
        return n * base
    return min(n, threshold) * base + max(0, n - threshold) * above


def claude_cost(prices, model, tok):
    if not model or model == "<synthetic>":
        return 0.0
    name, p = prices.lookup(model)
    if p is None:
        return 0.0
    inp = p["input_cost_per_token"]
    out = p.get("output_cost_per_token", 0.0)
    cw = p.get("cache_creation_input_token_cost", 0.0)
    cr = p.get("cache_read_input_token_cost", 0.0)
    c1h = p.get("cache_creation_input_token_cost_above_1hr", 2 * inp)
    ia = p.get("input_cost_per_token_above_200k_tokens")
    oa = p.get("output_cost_per_token_above_200k_tokens")
    cwa = p.get("cache_creation_input_token_cost_above_200k_tokens")
    cra = p.get("cache_read_input_token_cost_above_200k_tokens")
    c1ha = p.get("cache_creation_input_token_cost_above_1hr_above_200k_tokens", 2 * ia if ia is not None else None)
    c = (tier(tok["in"], inp, ia) + tier(tok["out"], out, oa) + tier(tok["w5"], cw, cwa)
         + tier(tok["w1"], c1h, c1ha) + tier(tok["cr"], cr, cra))
    if tok["speed"] == "fast":
        # the table's own key (data/prices.json), else sources.md's list (shared snapshot)
        c *= p.get("etld_fast_multiplier", FAST_MULTIPLIER.get(re.sub(r"-\d{8}$", "", name.split("/")[-1]), 1.0))
    return c


def claude_record(obj, raw, session_from_path, prices):
    """-> (record dict | None, skipped bool)."""
    outer = obj
    rec = obj
    msg = obj.get("message")
    if not (isinstance(msg, dict) and isinstance(msg.get("usage"), dict)):
        data = obj.get("data")
        inner = data.get("message") if isinstance(data, dict) else None
        if isinstance(inner, dict) and isinstance(inner.get("message"), dict) and \
                isinstance(inner["message"].get("usage"), dict):
            rec = inner
            msg = inner["message"]
        else:
            return None, False
    usage = msg["usage"]
    if "input_tokens" not in usage or "output_tokens" not in usage:
        return None, False
    for k in ("input_tokens", "output_tokens"):
        if not is_count(usage[k]):
            return None, True
    for k in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        if k in usage and not is_count(usage[k]):
            return None, True
    cc = usage.get("cache_creation")
    if isinstance(cc, dict):
        for k in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
            if k in cc and not is_count(cc[k]):
                return None, True
    # null-written keys (only the keys themselves; ccusage scans the bytes)
    for src in (outer, rec):
        for k in NULL_CHECKED:
            if k in src and src[k] is None:
                return None, True
    for k in ("id", "model"):
        if k in msg and msg[k] is None:
            return None, True
    if "speed" in usage and usage["speed"] is None:
        return None, True
    for k in ("cache_read_input_tokens", "cache_creation_input_tokens"):
        if k in usage and usage[k] is None:
            return None, True
    ts = norm_ts(rec.get("timestamp", outer.get("timestamp")))
    if ts is None:
        return None, True
    version = outer.get("version")
    if version is not None and not (isinstance(version, str) and VERSION_RE.match(version)):
        return None, True
    sid = outer.get("sessionId")
    rid = rec.get("requestId")
    mid = msg.get("id")
    model = msg.get("model")
    for v in (sid, rid, mid, model):
        if v is not None and (not isinstance(v, str) or v == ""):
            return None, True
    if isinstance(cc, dict):
        w5 = cc.get("ephemeral_5m_input_tokens", 0)
        w1 = cc.get("ephemeral_1h_input_tokens", 0)
    else:
        w5 = usage.get("cache_creation_input_tokens", 0)
        w1 = 0
    speed = "fast" if usage.get("speed") == "fast" else "standard"
    tok = {"in": usage["input_tokens"], "out": usage["output_tokens"], "cr": usage.get("cache_read_input_tokens", 0),
           "w5": w5, "w1": w1, "speed": speed}
    cost_usd = outer.get("costUSD", rec.get("costUSD"))
    if isinstance(cost_usd, (int, float)) and not isinstance(cost_usd, bool):
        cost = float(cost_usd)
    else:
        cost = claude_cost(prices, model, tok)
    return {"session": sid or session_from_path, "sidechain": outer.get("isSidechain") is True,
            "mid": mid, "rid": rid, "model": model or "", "ts": ts, "tok": tok, "cost": cost,
            "has_speed": "speed" in usage, "raw": raw}, False


def expect_claude(files, prices):
    acc = Acc()
    recs = []
    for path in sorted(files):
        if not (path.startswith("claude/projects/") and path.endswith(".jsonl")):
            continue
        rel = "0/" + path[len("claude/projects/"):]
        parts = rel.split("/")
        session_from_path = parts[2][:-6] if len(parts) == 3 else parts[2]
        lines, pending = split_lines(files[path])
        if pending:
            acc.note("pending_bytes", pending)
        seen = {}
        for off, line in lines:
            if len(line) > MAX_LINE_BYTES:
                acc.skipped += 1
                continue
            obj = parse_json_line(line, acc)
            if not isinstance(obj, dict):
                acc.skipped += 1
                continue
            r, skipped = claude_record(obj, line, session_from_path, prices)
            if skipped:
                acc.skipped += 1
            if r is None:
                continue
            r["order"] = (rel, off)
            nth = seen.get(line, 0)
            seen[line] = nth + 1
            r["nth"] = nth
            recs.append(r)
    # identity (sources.md, Claude "Identity"), as a function of the set of records
    events = {}
    main_by_key = {}
    main_by_sess_mid = {}
    for r in recs:
        if r["mid"] is None:
            key = ("line", r["session"], r["raw"], r["nth"])
        elif not r["sidechain"]:
            key = ("req", r["mid"], r["rid"]) if r["rid"] is not None else ("sess", r["mid"], r["session"])
            main_by_key.setdefault(key, key)
            main_by_sess_mid.setdefault((r["session"], r["mid"]), key)
        else:
            continue
        events.setdefault(key, []).append(r)
    for r in recs:
        if r["mid"] is None or not r["sidechain"]:
            continue
        key = None
        if r["rid"] is not None and ("req", r["mid"], r["rid"]) in main_by_key:
            key = ("req", r["mid"], r["rid"])
        elif (r["session"], r["mid"]) in main_by_sess_mid:
            key = main_by_sess_mid[(r["session"], r["mid"])]
        else:
            key = ("side", r["mid"], r["session"])
        events.setdefault(key, []).append(r)

    def rank(r):
        t = r["tok"]
        return (0 if not r["sidechain"] else 1, -(t["in"] + t["out"] + t["cr"] + t["w5"] + t["w1"]), -r["cost"],
                0 if r["has_speed"] else 1, r["order"])

    for key, rs in events.items():
        w = min(rs, key=rank)
        t = w["tok"]
        acc.add(w["ts"][:10], w["model"], t["speed"], t["in"], t["out"], t["cr"], t["w5"] + t["w1"], 0, w["cost"])
    return acc.dump()


# ----------------------------------------------------------------------------
# Codex


def openai_like_cost(prices, model, inp, cached, out, threshold_key):
    name, p = prices.lookup(model)
    if p is None:
        return 0.0
    sfx = ""
    for k in p:
        m = re.match(r"input_cost_per_token_above_(\d+)k_tokens$", k)
        if m and inp + cached > int(m.group(1)) * 1000:
            sfx = "_above_%sk_tokens" % m.group(1)
    def rate(base):
        return p.get(base + sfx, p.get(base, 0.0)) if sfx else p.get(base, 0.0)
    return inp * rate("input_cost_per_token") + cached * rate("cache_read_input_token_cost") + \
        out * rate("output_cost_per_token")


def expect_codex(files, prices):
    acc = Acc()
    seen_keys = {}
    roots = ("codex/sessions/", "codex/archived_sessions/")
    rels = {}
    for path in sorted(files):
        if not path.endswith(".jsonl"):
            continue
        for i, r in enumerate(roots):
            if path.startswith(r):
                rels[path] = (i, path[len(r):])
    in_sessions = {rel for (i, rel) in rels.values() if i == 0}
    fields = ("input_tokens", "cached_input_tokens", "output_tokens", "reasoning_output_tokens")
    for path in sorted(rels, key=lambda p: rels[p]):
        root_i, rel = rels[path]
        if root_i == 1 and rel in in_sessions:
            acc.note("archived_shadowed_files")
            continue
        lines, pending = split_lines(files[path])
        if pending:
            acc.note("pending_bytes", pending)
        model = None
        prev_total = None
        for off, line in lines:
            if len(line) > MAX_LINE_BYTES:
                acc.skipped += 1
                continue
            obj = parse_json_line(line, acc)
            if not isinstance(obj, dict):
                acc.skipped += 1
                continue
            typ = obj.get("type")
            payload = obj.get("payload") if isinstance(obj.get("payload"), dict) else {}
            if typ == "turn_context" and isinstance(payload.get("model"), str):
                model = payload["model"]
                continue
            if not (typ == "event_msg" and payload.get("type") == "token_count"):
                continue
            info = payload.get("info")
            if not isinstance(info, dict):
                continue
            ts = norm_ts(obj.get("timestamp"))
            if ts is None:
                acc.skipped += 1
                continue
            if isinstance(info.get("model"), str):
                model = info["model"]
            total = info.get("total_token_usage")
            last = info.get("last_token_usage")
            if isinstance(total, dict):
                tv = tuple(total.get(k, 0) for k in fields + ("total_tokens",))
                if prev_total is not None and tv == prev_total[0]:
                    continue
            if isinstance(last, dict):
                u = {k: last.get(k, 0) for k in fields}
                u["total_tokens"] = last.get("total_tokens")
            elif isinstance(total, dict):
                prev = prev_total[1] if prev_total else {k: 0 for k in fields}
                u = {k: max(0, total.get(k, 0) - prev.get(k, 0)) for k in fields}
                u["total_tokens"] = None
            else:
                continue
            if isinstance(total, dict):
                prev_total = (tuple(total.get(k, 0) for k in fields + ("total_tokens",)),
                              {k: total.get(k, 0) for k in fields})
            if all(u[k] == 0 for k in fields):
                continue
            m = model or "gpt-5"
            tot = u["total_tokens"] if u["total_tokens"] is not None else u["input_tokens"] + u["output_tokens"]
            key = (ts, m, u["input_tokens"], u["cached_input_tokens"], u["output_tokens"],
                   u["reasoning_output_tokens"], tot)
            if key in seen_keys:
                continue
            seen_keys[key] = True
            cached = min(u["cached_input_tokens"], u["input_tokens"])
            inp = u["input_tokens"] - cached
            out = u["output_tokens"]
            cost = openai_like_cost(prices, m, inp, cached, out, None)
            acc.add(ts[:10], m, "standard", inp, out, cached, 0, u["reasoning_output_tokens"], cost)
    return acc.dump()


# ----------------------------------------------------------------------------
# Gemini


def gemini_tokens(t):
    def g(k):
        v = t.get(k, 0)
        return v if is_count(v) else 0
    inp, out, cached, thoughts, tool, total = g("input"), g("output"), g("cached"), g("thoughts"), g("tool"), \
        t.get("total")
    if cached > 0 and total == inp + out + thoughts + tool:
        inp -= cached
    inp += tool
    return inp, out + thoughts, cached, thoughts


def expect_gemini(files, mtimes, prices):
    acc = Acc()
    for path in sorted(files):
        if not path.startswith("gemini/tmp/"):
            continue
        data = bytes(files[path])
        recs = {}  # id -> record, last wins (jsonl) / first write (json)
        order = []
        if path.endswith(".json"):
            try:
                doc = json.loads(data.decode("utf-8"))
            except ValueError:
                acc.note("unparsable_json_files")
                continue
            start, last_up = doc.get("startTime"), doc.get("lastUpdated")
            for m in doc.get("messages") or []:
                if isinstance(m, dict) and m.get("type") == "gemini" and isinstance(m.get("tokens"), dict):
                    if not isinstance(m.get("model"), str):
                        continue
                    mid = m.get("id")
                    if mid not in recs:
                        order.append(mid)
                    recs[mid] = (m, m["model"])
        elif path.endswith(".jsonl"):
            lines, pending = split_lines(data)
            if pending:
                acc.note("pending_bytes", pending)
            header = None
            last_model = None
            start = last_up = None
            for i, (off, line) in enumerate(lines):
                if len(line) > MAX_LINE_BYTES:
                    acc.skipped += 1
                    continue
                obj = parse_json_line(line, acc)
                if not isinstance(obj, dict):
                    acc.skipped += 1
                    continue
                if i == 0:
                    header = obj
                    start, last_up = obj.get("startTime"), obj.get("lastUpdated")
                    continue
                if isinstance(obj.get("model"), str):
                    last_model = obj["model"]
                if obj.get("type") == "gemini" and isinstance(obj.get("tokens"), dict):
                    model = obj.get("model") if isinstance(obj.get("model"), str) else last_model
                    if model is None:
                        continue
                    mid = obj.get("id")
                    if mid not in recs:
                        order.append(mid)
                    recs[mid] = (obj, model)
                elif obj.get("type") == "gemini" and obj.get("id") in recs:
                    # a revision without tokens replaces the record: nothing to count any more
                    recs[obj.get("id")] = (None, None)
        else:
            continue
        for mid in order:
            m, model = recs[mid]
            if m is None:
                continue
            ts = None
            for cand in (m.get("timestamp"), m.get("created_at"), start, last_up):
                if cand is not None:
                    ts = norm_ts(cand)
                    break
            if ts is None:
                ms = mtimes.get(path, 0)
                ts = (datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=ms)).strftime(
                    "%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)
            inp, out, cached, thoughts = gemini_tokens(m["tokens"])
            if inp == 0 and out == 0 and cached == 0:
                continue
            cost = openai_like_cost(prices, model, inp, cached, out, None)
            acc.add(ts[:10], model, "standard", inp, out, cached, 0, thoughts, cost)
    return acc.dump()


def expect_corpus(files, mtimes, prices_path=None):
    prices = Prices(prices_path)
    out = {"rules": "spec/sources.md (etld); corpus_expect.py", "providers": {}}
    provs = {p.split("/", 1)[0] for p in files}
    if "claude" in provs:
        out["providers"]["claude"] = expect_claude(files, prices)
    if "codex" in provs:
        out["providers"]["codex"] = expect_codex(files, prices)
    if "gemini" in provs:
        out["providers"]["gemini"] = expect_gemini(files, mtimes, prices)
    return out


def load_dir(root):
    files, mtimes = {}, {}
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for fn in sorted(fns):
            full = os.path.join(dp, fn)
            rel = os.path.relpath(full, root).replace(os.sep, "/")
            with open(full, "rb") as f:
                files[rel] = f.read()
            mtimes[rel] = int(os.stat(full).st_mtime_ns // 1000000)
    return files, mtimes


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--prices")
    a = ap.parse_args()
    files, mtimes = load_dir(a.corpus)
    json.dump(expect_corpus(files, mtimes, a.prices), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
