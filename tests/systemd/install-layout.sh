#!/bin/sh
# `meson install` puts every file where docs/operations.md says, and nothing
# else: installs into a temporary DESTDIR and compares the file list with the
# block between "<!-- installed-files -->" and "<!-- /installed-files -->" in
# the document. The document lists the default layout (prefix /usr/local);
# its prefix and unit directories are replaced by this build's before the
# comparison. Also checks that each installed unit's ExecStart= names an
# installed executable, with no @placeholder@ left unconfigured.
#
#   install-layout.sh BUILDDIR OPERATIONS_MD PREFIX SYSTEM_UNIT_DIR USER_UNIT_DIR
set -eu

build=$1 doc=$2 prefix=$3 sysdir=$4 userdir=$5
dest=$(mktemp -d /tmp/etld-layout-XXXXXX)
trap 'rm -rf "$dest"' EXIT INT TERM

if ! meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >"$dest.log" 2>&1; then
    cat "$dest.log"; rm -f "$dest.log"
    echo "meson install failed"; exit 1
fi
rm -f "$dest.log"

# The documented list, in this build's directories. A unit directory set to
# "no" is not installed, so its line is dropped.
expected=$(sed -n '/<!-- installed-files -->/,/<!-- \/installed-files -->/p' "$doc" |
    grep '^/' |
    { if [ "$sysdir" = no ]; then grep -v '^/usr/local/lib/systemd/system/'; else cat; fi; } |
    { if [ "$userdir" = no ]; then grep -v '^/usr/local/lib/systemd/user/'; else cat; fi; } |
    sed -e "s|^/usr/local/lib/systemd/system/|$sysdir/|" \
        -e "s|^/usr/local/lib/systemd/user/|$userdir/|" \
        -e "s|^/usr/local/|$prefix/|" | LC_ALL=C sort)
[ -n "$expected" ] || { echo "no installed-files block in $doc"; exit 1; }

actual=$(cd "$dest" && find . \( -type f -o -type l \) | sed 's|^\.||' | LC_ALL=C sort)

if [ "$expected" != "$actual" ]; then
    echo "installed files differ from $doc (- documented, + installed):"
    printf '%s\n' "$expected" >"$dest/.expected"
    printf '%s\n' "$actual" >"$dest/.actual"
    diff -u "$dest/.expected" "$dest/.actual" | tail -n +3 || true
    exit 1
fi

status=0
for unit in $(printf '%s\n' "$actual" | grep '\.service$'); do
    if grep -n '@[a-z_]*@' "$dest$unit"; then
        echo "$unit: unconfigured placeholder"; status=1
    fi
    exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$dest$unit")
    if [ ! -x "$dest$exe" ]; then
        echo "$unit: ExecStart=$exe is not an installed executable"; status=1
    fi
done
[ $status -eq 0 ] && echo "installed as documented: $(printf '%s\n' "$actual" | wc -l) files"
exit $status
