#!/bin/sh
# scripts/build-deb.sh OUTDIR
#
# Builds the Debian package libapache2-mod-ocspstaple (`make deb` calls it,
# after scripts/deps.sh --deb) and checks it with lintian.
#
# dpkg-buildpackage writes its results (.deb, .changes, .buildinfo) into the
# parent of the source tree, and `dh clean` rewrites files inside it. So the
# build runs in a copy, OUTDIR/libapache2-mod-ocspstaple/, and everything
# lands in OUTDIR (build/deb/): the checkout itself is never written to.
# The copy is the checkout's files as git sees them, edits not yet committed
# included, build products (.libs, t/logs, t/pki...) left out.
#
# Fails if the build fails or lintian reports an error; lintian's warnings
# are printed (and kept in OUTDIR/lintian.txt).
set -eu

OUT=${1:?usage: $0 OUTDIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PKG=libapache2-mod-ocspstaple
SRC=$OUT/$PKG

cd "$ROOT"
git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    { echo "build-deb: $ROOT is not a git checkout (the copy is made from git's file list)" >&2; exit 1; }

# Results of an earlier build go first: the .deb left must be this one.
rm -rf "$SRC"
rm -f "$OUT/$PKG"_* "$OUT/lintian.txt"
mkdir -p "$SRC"

# Tracked files and new ones not ignored (-co --exclude-standard), minus
# tracked files deleted in the work tree (tar would stop at them).
git ls-files -z -co --exclude-standard |
    perl -0 -ne 'chomp; print "$_\0" if -e $_' |
    tar --null -T - -cf - | tar -xf - -C "$SRC"

(cd "$SRC" && dpkg-buildpackage -us -uc -b) > "$OUT/build.log" 2>&1 ||
    { tail -n 40 "$OUT/build.log" >&2
      echo "build-deb: dpkg-buildpackage failed (whole log: $OUT/build.log)" >&2; exit 1; }

changes=$(ls "$OUT/$PKG"_*.changes)
# The .changes names the .deb and .buildinfo: lintian checks all three.
# Errors fail the build; warnings and info are shown.
rc=0
lintian --info --fail-on error "$changes" > "$OUT/lintian.txt" 2>&1 || rc=$?
cat "$OUT/lintian.txt"
[ "$rc" -eq 0 ] || { echo "build-deb: lintian reports errors" >&2; exit 1; }

echo "build-deb: built" "$OUT/$PKG"_*.deb
