#!/usr/bin/env python3
"""Compare etld's store with ccusage 20.0.24's golden output for a seeded corpus.

Usage
-----
    compare.py --golden DIR --corpus CORPUS --db STORE.db [--providers LIST] [--tolerance USD]
    compare.py --golden DIR --corpus CORPUS --expected EXPECTED.json     (corpus_expect.py output)
    compare.py --print-hash CORPUS
    compare.py --golden DIR --print-gen-args

DIR is tests/golden/<preset>-seed<N>/ holding {claude,codex,gemini}.json, each
{"ccusage_version", "corpus_sha256", "generator": {"args"}, "command", "report"},
where "report" is ccusage's JSON verbatim (see regen.sh). Exit status: 0 when
everything matches, 1 on any mismatch (a diff is printed), 2 on usage errors.

Checks, in order:
 1. the corpus hash (below) equals the golden's: the corpus was made by the same
    generator with the same arguments (otherwise regenerate the goldens);
 2. per provider and UTC day, and per provider, day and model: tokens exactly,
    cost within --tolerance dollars (default 0.000001) per day and per model row
    where ccusage gives a per-model cost.

Corpus hash: SHA-256 over every regular file under CORPUS, in the byte order of
their relative paths ('/'-separated, UTF-8), each fed as
    path + b"\\0" + decimal byte length + b"\\0" + content
Symlinks are not followed; directories and mtimes do not count.

Our side: `SELECT provider, day, model, speed, SUM(input_tokens), SUM(output_tokens),
SUM(cache_read_tokens), SUM(cache_create_tokens), SUM(reasoning_tokens),
SUM(cost_usd) FROM usage_events GROUP BY provider, day, model, speed` (read-only;
reasoning_tokens may be absent, then taken as 0). A `speed = 'fast'` row is named
`<model>-fast`, as ccusage names it.

Field mapping (ccusage daily --json -> usage_events), checked on 20.0.24:

  claude  daily[].{inputTokens, outputTokens, cacheReadTokens, cacheCreationTokens,
          totalCost}; modelBreakdowns[].{modelName, ..., cost}
            input_tokens = inputTokens, output_tokens = outputTokens,
            cache_read_tokens = cacheReadTokens, cache_create_tokens = cacheCreationTokens
          `<synthetic>` records count in the day totals but ccusage lists no
          modelBreakdowns row for them: ours are compared at day level only.
  codex   daily[].{inputTokens, cacheReadTokens, cacheCreationTokens, outputTokens,
          reasoningOutputTokens, totalTokens, costUSD}; models{name: {same fields,
          isFallback}} without a per-model cost (cost is compared per day only).
            inputTokens is the non-cached input (input_tokens - cached, already),
            = input_tokens; cacheReadTokens = cache_read_tokens; outputTokens
            includes reasoning = output_tokens; reasoningOutputTokens = reasoning_tokens.
  gemini  same shape as claude. outputTokens EXCLUDES thoughts, while the cost
          includes them: outputTokens = output_tokens - reasoning_tokens (per day and
          per model). Thoughts appear in no ccusage field of their own (totalTokens
          includes them only for records whose tokens.total is the sum of the parts),
          so reasoning_tokens is checked only through the cost. inputTokens already
          has cached taken out (when total == the sum) and tool added.

Days or rows whose tokens and cost are all zero on one side and absent on the
other are ignored (ccusage lists a day made only of zero-token <synthetic> lines).
"""

import argparse
import hashlib
import json
import os
import sqlite3
import stat
import sys

PROVIDERS = ("claude", "codex", "gemini")
TOKEN_FIELDS = ("input", "output", "cache_read", "cache_create", "reasoning")
MODELLESS_IN_CCUSAGE = {"claude": {"<synthetic>"}}


def corpus_hash(root):
    entries = []
    for dp, dns, fns in os.walk(root, followlinks=False):
        for fn in fns:
            full = os.path.join(dp, fn)
            st = os.lstat(full)
            if not stat.S_ISREG(st.st_mode):
                continue
            rel = os.path.relpath(full, root).replace(os.sep, "/").encode("utf-8")
            entries.append((rel, full))
    entries.sort()
    h = hashlib.sha256()
    for rel, full in entries:
        with open(full, "rb") as f:
            data = f.read()
        h.update(rel + b"\0" + str(len(data)).encode() + b"\0")
        h.update(data)
    return h.hexdigest()


class Row:
    __slots__ = ("input", "output", "cache_read", "cache_create", "reasoning", "cost", "has_cost", "has_reasoning")

    def __init__(self):
        self.input = self.output = self.cache_read = self.cache_create = self.reasoning = 0
        self.cost = 0.0
        self.has_cost = True
        self.has_reasoning = True

    def add(self, o):
        for f in TOKEN_FIELDS:
            setattr(self, f, getattr(self, f) + getattr(o, f))
        self.cost += o.cost

    def zero(self):
        return all(getattr(self, f) == 0 for f in TOKEN_FIELDS) and abs(self.cost) < 1e-12


def load_golden(gdir, providers):
    goldens = {}
    for p in providers:
        fp = os.path.join(gdir, p + ".json")
        if os.path.exists(fp):
            with open(fp) as f:
                goldens[p] = json.load(f)
    if not goldens:
        sys.exit("compare: no golden files in %s" % gdir)
    hashes = {g["corpus_sha256"] for g in goldens.values()}
    if len(hashes) != 1:
        sys.exit("compare: golden files in %s disagree on the corpus hash" % gdir)
    return goldens


def ccusage_rows(provider, report):
    """-> (days {day: Row}, models {(day, name): Row})."""
    days, models = {}, {}
    for d in report.get("daily", []):
        day = d["date"]
        r = Row()
        r.input = d.get("inputTokens", 0)
        r.cache_read = d.get("cacheReadTokens", 0)
        r.cache_create = d.get("cacheCreationTokens", 0)
        r.output = d.get("outputTokens", 0)
        r.cost = d.get("totalCost", d.get("costUSD", 0.0))
        if provider == "codex":
            r.reasoning = d.get("reasoningOutputTokens", 0)
        else:
            # claude has no reasoning; gemini's thoughts are in no field of ccusage's
            # (totalTokens leaves them out when tokens.total is not the sum), only in its cost
            r.has_reasoning = False
        days[day] = r
        if provider == "codex":
            items = [(name, m) for name, m in d.get("models", {}).items()]
        else:
            items = [(m["modelName"], m) for m in d.get("modelBreakdowns", [])]
        for name, m in items:
            mr = Row()
            mr.input = m.get("inputTokens", 0)
            mr.cache_read = m.get("cacheReadTokens", 0)
            mr.cache_create = m.get("cacheCreationTokens", 0)
            mr.output = m.get("outputTokens", 0)
            if provider == "codex":
                mr.reasoning = m.get("reasoningOutputTokens", 0)
                mr.has_cost = False
            else:
                mr.cost = m.get("cost", 0.0)
                mr.has_reasoning = False
            models[(day, name)] = mr
    return days, models


def our_rows_from_db(path):
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        cols = {r[1] for r in con.execute("PRAGMA table_info(usage_events)")}
        if not cols:
            sys.exit("compare: %s has no usage_events table" % path)
        reasoning = "SUM(reasoning_tokens)" if "reasoning_tokens" in cols else "0"
        speed = "speed" if "speed" in cols else "'standard'"
        q = ("SELECT provider, day, model, %s, SUM(input_tokens), SUM(output_tokens), SUM(cache_read_tokens), "
             "SUM(cache_create_tokens), %s, SUM(cost_usd) FROM usage_events GROUP BY provider, day, model, %s"
             % (speed, reasoning, speed))
        out = []
        for prov, day, model, spd, i, o, cr, cc, rs, cost in con.execute(q):
            out.append({"provider": prov, "day": day, "model": model, "speed": spd, "input_tokens": i,
                        "output_tokens": o, "cache_read_tokens": cr, "cache_create_tokens": cc,
                        "reasoning_tokens": rs, "cost_usd": cost})
        return out, "reasoning_tokens" in cols
    finally:
        con.close()


def our_rows_from_expected(path):
    with open(path) as f:
        exp = json.load(f)
    out = []
    for prov, body in exp["providers"].items():
        for r in body["rows"]:
            out.append(dict(r, provider=prov))
    return out, True


def our_tables(flat, provider):
    days, models = {}, {}
    for r in flat:
        if r["provider"] != provider:
            continue
        x = Row()
        x.input = r["input_tokens"] or 0
        x.output = r["output_tokens"] or 0
        x.cache_read = r["cache_read_tokens"] or 0
        x.cache_create = r["cache_create_tokens"] or 0
        x.reasoning = r["reasoning_tokens"] or 0
        x.cost = r["cost_usd"] or 0.0
        name = r["model"] + ("-fast" if r["speed"] == "fast" else "")
        days.setdefault(r["day"], Row()).add(x)
        models.setdefault((r["day"], name), Row()).add(x)
    return days, models


def compare_provider(provider, golden, flat, tol, have_reasoning, out):
    cdays, cmodels = ccusage_rows(provider, golden["report"])
    odays, omodels = our_tables(flat, provider)
    bad = 0

    def diff(where, field, ours, theirs):
        nonlocal bad
        bad += 1
        if isinstance(ours, float) or isinstance(theirs, float):
            out.append("  %-42s %-13s ours %.9f  ccusage %.9f  (diff %+.9f)" % (where, field, ours, theirs,
                                                                              ours - theirs))
        else:
            out.append("  %-42s %-13s ours %d  ccusage %d  (diff %+d)" % (where, field, ours, theirs,
                                                                       ours - theirs))

    def cmp_rows(where, o, c, model_level):
        fields = ["input", "output", "cache_read", "cache_create"]
        ours_output = o.output
        if provider == "gemini":
            ours_output = o.output - o.reasoning  # ccusage's outputTokens exclude thoughts
        for f in fields:
            ov = ours_output if f == "output" else getattr(o, f)
            cv = getattr(c, f)
            if ov != cv:
                label = "output-reasoning" if (f == "output" and provider == "gemini") else f + "_tokens"
                diff(where, label, ov, cv)
        if c.has_reasoning and have_reasoning and provider in ("codex", "gemini") and o.reasoning != c.reasoning:
            diff(where, "reasoning", o.reasoning, c.reasoning)
        if c.has_cost and abs(o.cost - c.cost) > tol:
            diff(where, "cost_usd", o.cost, c.cost)

    for day in sorted(set(cdays) | set(odays)):
        o, c = odays.get(day), cdays.get(day)
        if o is None and c.zero() or c is None and o.zero():
            continue
        if o is None:
            bad += 1
            out.append("  %-42s missing in the store (ccusage has it)" % ("%s %s" % (provider, day)))
            continue
        if c is None:
            bad += 1
            out.append("  %-42s in the store, not in ccusage" % ("%s %s" % (provider, day)))
            continue
        cmp_rows("%s %s (day)" % (provider, day), o, c, False)
    skip_names = MODELLESS_IN_CCUSAGE.get(provider, set())
    for key in sorted(set(cmodels) | set(omodels)):
        day, name = key
        if name in skip_names:
            continue
        o, c = omodels.get(key), cmodels.get(key)
        where = "%s %s %s" % (provider, day, name)
        if o is None and c.zero() or c is None and o.zero():
            continue
        if o is None:
            bad += 1
            out.append("  %-42s missing in the store (ccusage has it)" % where)
            continue
        if c is None:
            bad += 1
            out.append("  %-42s in the store, not in ccusage" % where)
            continue
        cmp_rows(where, o, c, True)
    return bad, len(cdays), len(cmodels)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare etld's store with ccusage goldens.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--golden")
    ap.add_argument("--corpus")
    src = ap.add_mutually_exclusive_group()
    src.add_argument("--db")
    src.add_argument("--expected")
    ap.add_argument("--providers", default=",".join(PROVIDERS))
    ap.add_argument("--tolerance", type=float, default=1e-6)
    ap.add_argument("--print-hash", metavar="CORPUS")
    ap.add_argument("--print-gen-args", action="store_true")
    a = ap.parse_args(argv)
    if a.print_hash:
        print(corpus_hash(a.print_hash))
        return 0
    providers = [p for p in a.providers.split(",") if p]
    if not a.golden:
        ap.error("--golden is required")
    goldens = load_golden(a.golden, providers)
    any_golden = next(iter(goldens.values()))
    if a.print_gen_args:
        print(" ".join(any_golden["generator"]["args"]))
        return 0
    if not a.corpus or not (a.db or a.expected):
        ap.error("--corpus and one of --db/--expected are required")
    want = any_golden["corpus_sha256"]
    got = corpus_hash(a.corpus)
    if got != want:
        print("compare: corpus %s has hash %s, golden %s expects %s.\n"
              "  The generator or its arguments changed: regenerate with tests/golden/regen.sh,\n"
              "  or generate the corpus with: bench/gen_corpus.py %s"
              % (a.corpus, got, a.golden, want, " ".join(any_golden["generator"]["args"])))
        return 1
    flat, have_reasoning = our_rows_from_db(a.db) if a.db else our_rows_from_expected(a.expected)
    failures = 0
    for p in providers:
        if p not in goldens:
            continue
        g = goldens[p]
        out = []
        bad, ndays, nmodels = compare_provider(p, g, flat, a.tolerance, have_reasoning, out)
        if bad:
            print("%s: %d mismatch(es) against ccusage %s (%s):" % (p, bad, g["ccusage_version"], a.golden))
            print("\n".join(out))
        else:
            print("%s: OK (%d days, %d model rows, ccusage %s)" % (p, ndays, nmodels, g["ccusage_version"]))
        failures += bad
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
