#!/usr/bin/env bash
# `cmake --install` puts everything where the system looks for it, for the
# default /usr/local prefix and for /usr (the package's): the programs, the
# mount(8) helpers (in /sbin, or /usr/sbin for /usr, linked to dbfs-mount),
# man pages, bash completion, the systemd unit, libdbfs with its headers and
# a pkg-config file naming the prefix, the Python module where python3
# finds it. Into a DESTDIR; a C and a C++ program build against it with
# pkg-config and run.
source "$(dirname "$0")/../integration/lib.sh"
require cmake pkg-config cc c++
BUILD=${DBFS_BUILD_DIR:?}
T=$(mktemp -d /tmp/dbfs-install.XXXXXX)
trap 'rm -rf "$T"' EXIT

check_tree() {  # check_tree ROOT PREFIX HELPER_DIR PYTHON_DIR
  local root=$1 prefix=$2 helpers=$3 py=$4 f
  for f in bin/dbfs bin/dbfs-mount sbin/mkfs.dbfs sbin/fsck.dbfs; do
    [ -x "$root$prefix/$f" ] || die "$prefix/$f is not installed"
  done
  [ "$(readlink "$root$prefix/sbin/fsck.fuse.dbfs")" = fsck.dbfs ] || die "fsck.fuse.dbfs missing"
  for f in mount.dbfs mount.fuse.dbfs; do
    [ "$(readlink "$root$helpers/$f")" = "$prefix/bin/dbfs-mount" ] ||
      die "$helpers/$f is not a link to $prefix/bin/dbfs-mount"
  done
  for f in man1/dbfs.1 man7/dbfs.7 man8/dbfs-mount.8 man8/mkfs.dbfs.8 man8/fsck.dbfs.8 man3/libdbfs.3; do
    [ -s "$root$prefix/share/man/$f" ] || die "man page $f is not installed"
  done
  for f in dbfs dbfs-mount mkfs.dbfs fsck.dbfs; do
    [ -s "$root$prefix/share/bash-completion/completions/$f" ] || die "completion $f missing"
  done
  [ -s "$root$prefix/lib/systemd/system/dbfs@.service" ] || die "systemd unit missing"
  [ -s "$root$prefix/$py/dbfs/__init__.py" ] || die "Python module not in $prefix/$py"
  [ -s "$root$prefix/include/dbfs/dbfs.h" ] && [ -s "$root$prefix/include/dbfs/dbfs.hpp" ] ||
    die "libdbfs headers missing"
  local pc
  pc=$(find "$root$prefix/lib" -name dbfs.pc | head -1)
  [ -n "$pc" ] || die "dbfs.pc missing"
  grep -qx "prefix=$prefix" "$pc" || die "dbfs.pc names the wrong prefix: $(head -1 "$pc")"
  [ -n "$(find "$root$prefix/lib" -name libdbfs.so.0)" ] || die "libdbfs.so.0 missing"
}

DESTDIR=$T/local cmake --install "$BUILD" --prefix /usr/local >"$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; die "cmake --install failed"; }
pyver=$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
check_tree "$T/local" /usr/local /sbin "lib/python$pyver/dist-packages"
# /usr/local/lib/pythonX.Y/dist-packages is on Debian's python3 path.
/usr/bin/python3 -c 'import sys; sys.exit(0 if "/usr/local/lib/python'"$pyver"'/dist-packages" in sys.path else 1)' ||
  die "python3 does not look in /usr/local/lib/python$pyver/dist-packages"

DESTDIR=$T/usr cmake --install "$BUILD" --prefix /usr >"$T/install.log" 2>&1 ||
  { cat "$T/install.log" >&2; die "cmake --install --prefix /usr failed"; }
check_tree "$T/usr" /usr /usr/sbin lib/python3/dist-packages

# Programs build against the installed library through pkg-config.
export PKG_CONFIG_SYSROOT_DIR=$T/local
PKG_CONFIG_PATH=$(dirname "$(find "$T/local/usr/local/lib" -name dbfs.pc | head -1)")
export PKG_CONFIG_PATH
cat >"$T/c.c" <<'C'
#include <dbfs/dbfs.h>
#include <stdio.h>
int main(void) {
  dbfs_tx *tx;
  int rc = dbfs_tx_begin("/", 0, &tx);
  printf("%s\n", rc == DBFS_ENOTDBFS ? "ENOTDBFS" : dbfs_strerror(rc));
  return 0;
}
C
cat >"$T/cxx.cc" <<'CXX'
#include <dbfs/dbfs.hpp>
#include <iostream>
int main() {
  try {
    dbfs::RunTransaction("/", [] {});
  } catch (const dbfs::Error& e) {
    std::cout << (e.code() == DBFS_ENOTDBFS ? "ENOTDBFS" : e.what()) << "\n";
  }
}
CXX
# shellcheck disable=SC2046
cc -o "$T/c" "$T/c.c" $(pkg-config --cflags --libs dbfs) || die "cc failed"
# shellcheck disable=SC2046
c++ -std=c++17 -o "$T/cxx" "$T/cxx.cc" $(pkg-config --cflags --libs dbfs) || die "c++ failed"
libdir=$(dirname "$(ls "$T"/local/usr/local/lib/libdbfs.so.0 "$T"/local/usr/local/lib/*/libdbfs.so.0 2>/dev/null | head -1)")
[ "$(LD_LIBRARY_PATH=$libdir "$T/c")" = ENOTDBFS ] || die "the C program did not run"
[ "$(LD_LIBRARY_PATH=$libdir "$T/cxx")" = ENOTDBFS ] || die "the C++ program did not run"
log "PASS"
