#!/usr/bin/env bash
# The quick start, in one place: install what is missing, build, then run the
# daemon (`run`) or the whole test suite (`test`, as CI does).
#
#   scripts/dev.sh run  [etld flags...]   build, then run etld in the foreground
#   scripts/dev.sh test                   build, run every suite, then again under
#                                         AddressSanitizer + UndefinedBehaviorSanitizer
#
# Works on a fresh Debian 12 machine as root, or as a user with sudo.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"

# Build and test dependencies, all Debian packages.
packages=(
  g++ meson ninja-build pkg-config cmake python3
  libuv1-dev libsqlite3-dev rapidjson-dev libcxxopts-dev doctest-dev
  util-linux sqlite3 systemd
)

install_missing() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: ${missing[*]}"
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
}

configure() {  # configure DIR [meson options...]
  local dir=$1; shift
  if [ -f "$dir/build.ninja" ]; then
    meson configure "$dir" "$@" >/dev/null
  else
    meson setup "$dir" "$@"
  fi
}

run_suites() {  # run_suites DIR: every suite in one run (tests/ defines them in order of cost),
  # so that meson-logs/testlog.json holds every result for the summary
  meson test -C "$1" --suite unit --suite component --suite integration \
    --print-errorlogs --num-processes 2
}

summary() {  # the closing 'N passed, N failed' line over the given build dirs
  python3 - "$@" <<'PY'
import json, sys
passed = failed = 0
for d in sys.argv[1:]:
    try:
        for line in open(f"{d}/meson-logs/testlog.json"):
            r = json.loads(line).get("result")
            if r in ("OK", "EXPECTEDFAIL"): passed += 1
            elif r in ("FAIL", "TIMEOUT", "ERROR", "UNEXPECTEDPASS"): failed += 1
    except FileNotFoundError:
        failed += 1
print(f"{passed} passed, {failed} failed")
PY
}

cmd=${1:-}
shift || true
case "$cmd" in
  run)
    install_missing
    configure build -Dbuildtype=release -Dtests=false -Dbench=false
    ninja -C build
    exec ./build/daemon/etld "$@"
    ;;
  test)
    install_missing
    rc=0
    configure build -Dwerror=true
    ninja -C build
    run_suites build || rc=1
    # No -Dwerror here: instrumented code makes GCC 12 report maybe-uninitialized
    # false positives inside libstdc++'s <regex> (pulled in by cxxopts); the
    # plain build above keeps our own code warning-free.
    configure build-asan -Db_sanitize=address,undefined -Db_lundef=false -Dbench=false
    ninja -C build-asan
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      run_suites build-asan || rc=1
    summary build build-asan
    exit $rc
    ;;
  *)
    sed -n '2,10p' "$0" >&2
    exit 2
    ;;
esac
