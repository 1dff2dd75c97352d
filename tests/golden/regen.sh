#!/usr/bin/env bash
# Regenerate the ccusage golden files under tests/golden/<preset>-seed<N>/.
#
#   tests/golden/regen.sh                 # all goldens listed in GOLDENS below
#   GOLDENS="small-seed4" tests/golden/regen.sh
#   CCUSAGE=/path/to/ccusage tests/golden/regen.sh
#
# For each name <preset>-seed<N> it
#   1. generates the corpus: bench/gen_corpus.py --seed N --preset <preset> (ccusage-compatible),
#   2. runs ccusage 20.0.24 on it (make_golden.py: claude/codex/gemini daily --json --offline
#      --timezone UTC, with an empty HOME and working directory) and writes
#      <name>/{claude,codex,gemini}.json = {ccusage_version, command, env, generator args,
#      corpus_sha256, report},
#   3. checks that ccusage agrees with bench/corpus_expect.py (the rules of spec/sources.md) on
#      that corpus, so that no golden is committed that a correct etld could not match.
#
# ccusage is not needed anywhere else: CI regenerates the corpus from the recorded generator
# arguments, checks its hash, and compares the store with the committed report (compare.py).
# Install it outside the repository:
#   mkdir -p /work/ccusage && cd /work/ccusage &&
#   npm install ccusage@20.0.24 @ccusage/ccusage-linux-x64@20.0.24 &&
#   chmod +x node_modules/@ccusage/ccusage-linux-x64/bin/ccusage
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
CCUSAGE=${CCUSAGE:-/work/ccusage/node_modules/@ccusage/ccusage-linux-x64/bin/ccusage}
GOLDENS=${GOLDENS:-"small-seed1 small-seed2 small-seed3"}
WANT_VERSION=20.0.24

if [ ! -x "$CCUSAGE" ]; then
    echo "regen.sh: ccusage not found at $CCUSAGE (set CCUSAGE=...)" >&2
    exit 2
fi
version=$("$CCUSAGE" --version | awk '{print $NF}')
if [ "$version" != "$WANT_VERSION" ] && [ "${ALLOW_OTHER_VERSION:-0}" != 1 ]; then
    echo "regen.sh: ccusage is $version, the goldens are for $WANT_VERSION (ALLOW_OTHER_VERSION=1 to override)" >&2
    exit 2
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for name in $GOLDENS; do
    preset=${name%-seed*}
    seed=${name##*-seed}
    args="--seed $seed --preset $preset"
    corpus="$tmp/$name"
    python3 "$repo/bench/gen_corpus.py" $args --out "$corpus" --quiet
    rm -rf "$here/$name"
    python3 "$here/make_golden.py" --corpus "$corpus" --out "$here/$name" --gen-args "$args" --ccusage "$CCUSAGE"
    python3 "$repo/bench/corpus_expect.py" "$corpus" > "$tmp/$name.expected.json"
    if ! python3 "$here/compare.py" --golden "$here/$name" --corpus "$corpus" --expected "$tmp/$name.expected.json"; then
        echo "regen.sh: ccusage and spec/sources.md disagree on $name; not a usable golden" >&2
        exit 1
    fi
    echo "regen.sh: wrote $here/$name"
done
