#!/usr/bin/env python3
"""Run ccusage on a corpus and write golden files (used by regen.sh).

    make_golden.py --corpus CORPUS --out DIR --gen-args "ARGS" [--ccusage BIN] [--providers LIST]

For each provider whose tree exists in CORPUS it runs

    claude:  CLAUDE_CONFIG_DIR=CORPUS/claude   ccusage claude daily --json --offline --timezone UTC
    codex:   CODEX_HOME=CORPUS/codex           ccusage codex  daily --json --offline --timezone UTC
    gemini:  GEMINI_DATA_DIR=CORPUS/gemini/tmp ccusage gemini daily --json --offline --timezone UTC

with a clean environment (an empty HOME and working directory, so no ccusage
config file or ~/.claude is picked up; only PATH, LANG and the one variable
above), and writes DIR/<provider>.json:

    {"ccusage_version": "20.0.24", "command": ..., "env": ...,
     "generator": {"script": "bench/gen_corpus.py", "args": [...]},
     "corpus_sha256": ..., "report": <ccusage's JSON output, verbatim>}

BIN defaults to $CCUSAGE, else /work/ccusage/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import compare  # noqa: E402

DEFAULT_BIN = "/work/ccusage/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage"
ENV_VAR = {"claude": ("CLAUDE_CONFIG_DIR", "claude"), "codex": ("CODEX_HOME", "codex"),
           "gemini": ("GEMINI_DATA_DIR", "gemini/tmp")}


def run_ccusage(binary, provider, corpus):
    var, sub = ENV_VAR[provider]
    with tempfile.TemporaryDirectory(prefix="ccusage-home-") as home:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": home,
               "NO_COLOR": "1", var: os.path.join(os.path.abspath(corpus), sub)}
        cmd = [binary, provider, "daily", "--json", "--offline", "--timezone", "UTC"]
        p = subprocess.run(cmd, env=env, cwd=home, capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit("make_golden: %s failed (%d): %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
        return json.loads(p.stdout), "%s=<corpus>/%s" % (var, sub), " ".join(["ccusage"] + cmd[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--gen-args", required=True, help="gen_corpus.py arguments that made CORPUS (without --out)")
    ap.add_argument("--ccusage", default=os.environ.get("CCUSAGE", DEFAULT_BIN))
    ap.add_argument("--providers", default="claude,codex,gemini")
    a = ap.parse_args()
    version = subprocess.run([a.ccusage, "--version"], capture_output=True, text=True).stdout.strip().split()[-1]
    digest = compare.corpus_hash(a.corpus)
    os.makedirs(a.out, exist_ok=True)
    for p in a.providers.split(","):
        if not os.path.isdir(os.path.join(a.corpus, ENV_VAR[p][1])):
            continue
        report, env, command = run_ccusage(a.ccusage, p, a.corpus)
        doc = {"ccusage_version": version, "command": command, "env": env,
               "generator": {"script": "bench/gen_corpus.py", "args": shlex.split(a.gen_args)},
               "corpus_sha256": digest, "report": report}
        with open(os.path.join(a.out, p + ".json"), "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
