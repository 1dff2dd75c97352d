#!/bin/sh
# `systemd-analyze verify` on both units as `meson install` installs them:
# the template through an instance (etld@alice.service) in system mode, the
# user unit with --user and a temporary XDG_RUNTIME_DIR. Then
# `systemd-analyze security --offline` holds each unit's exposure under a
# threshold, so a hardening line removed by mistake fails here.
#
# verify checks that ExecStart= exists and that the man pages named by
# Documentation= are found, so the units must be seen as really installed.
# Without touching the machine: the install goes to a temporary DESTDIR, and
# inside a private mount namespace (unshare) that DESTDIR's prefix is laid
# over the real one with overlayfs. Needs root for that; skipped (exit 77)
# without root, systemd-analyze, unshare or overlayfs, or when the prefix does
# not exist on this machine. verify exits 0 even on warnings (an unknown key,
# a bad value), so any line it prints fails the test.
#
#   verify-units.sh BUILDDIR PREFIX SYSTEM_UNIT_DIR USER_UNIT_DIR
set -eu

build=$1 prefix=$2 sysdir=$3 userdir=$4
# Exposure thresholds, systemd-analyze's score times ten. With systemd 252
# the system unit scores 0.4, the user unit 1.4 (judged offline as if it ran
# as root, without User=); the margin absorbs other versions' weights, not a
# lost hardening line.
system_threshold=10
user_threshold=20

skip() { echo "skipped: $*"; exit 77; }
command -v systemd-analyze >/dev/null || skip "no systemd-analyze"
command -v unshare >/dev/null || skip "no unshare"
[ "$(id -u)" -eq 0 ] || skip "needs root to lay the DESTDIR over $prefix in a private mount namespace"
[ -d "$prefix" ] || skip "the prefix $prefix does not exist on this machine"
unshare --mount --propagation private true 2>/dev/null || skip "cannot make a private mount namespace"

dest=$(mktemp -d /tmp/etld-verify-XXXXXX)
trap 'rm -rf "$dest"' EXIT INT TERM
if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest/.install.log" 2>&1; then
    cat "$dest/.install.log"; echo "meson install failed"; exit 1
fi

# Runs in the private namespace: $1 dest, $2 prefix, $3 sysdir, $4 userdir,
# $5 and $6 the thresholds.
inner='
set -u
dest=$1 prefix=$2 sysdir=$3 userdir=$4
mount -t overlay overlay -o "lowerdir=$dest$prefix:$prefix" "$prefix" 2>/dev/null || exit 77
man_flag=--man=yes
if command -v man >/dev/null; then
    # The installed pages first; the trailing colon keeps the default path.
    export MANPATH="$prefix/share/man:"
else
    echo "note: no man(1) here, Documentation= not checked"; man_flag=--man=no
fi
status=0
check() {  # check LABEL COMMAND...: fails on a non-zero exit or on any output
    label=$1; shift
    out=$("$@" 2>&1); rc=$?
    if [ $rc -ne 0 ] || [ -n "$out" ]; then
        echo "$label: FAILED (exit $rc)"; printf "%s\n" "$out"; status=1
    else
        echo "$label: ok"
    fi
}
if [ "$sysdir" != no ]; then
    check "verify etld@alice.service" systemd-analyze verify "$man_flag" "$dest$sysdir/etld@alice.service"
    score=$(systemd-analyze security --no-pager --offline=yes --threshold="$5" "$dest$sysdir/etld@alice.service" 2>&1) ||
        { printf "%s\n" "$score" | grep -v "^✓"; echo "etld@alice.service: exposure above $5/100"; status=1; }
    printf "%s\n" "$score" | grep "Overall exposure" || true
fi
if [ "$userdir" != no ]; then
    XDG_RUNTIME_DIR=$(mktemp -d /tmp/etld-verify-xdg-XXXXXX); export XDG_RUNTIME_DIR
    check "verify --user etld.service" systemd-analyze --user verify "$man_flag" "$dest$userdir/etld.service"
    score=$(systemd-analyze --user security --no-pager --offline=yes --threshold="$6" "$dest$userdir/etld.service" 2>&1) ||
        { printf "%s\n" "$score" | grep -v "^✓"; echo "etld.service: exposure above $6/100"; status=1; }
    printf "%s\n" "$score" | grep "Overall exposure" || true
    rm -rf "$XDG_RUNTIME_DIR"
fi
exit $status
'
set +e
unshare --mount --propagation private sh -c "$inner" verify-units "$dest" "$prefix" "$sysdir" "$userdir" \
    "$system_threshold" "$user_threshold"
rc=$?
[ $rc -eq 77 ] && skip "overlayfs cannot be mounted over $prefix here"
exit $rc
