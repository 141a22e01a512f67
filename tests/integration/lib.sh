# Shared helpers for the shell integration tests. Source it, then:
#
#   dbfs_setup            # temp dir, mkfs, mount at $MNT; cleanup trap installed
#   ... use $MNT ...
#   dbfs_remount          # clean unmount + mount again
#   dbfs_pass             # success: cleanup happens in the EXIT trap
#
# Variables: $DBFS_BIN_DIR (tools), $T (temp dir), $VOL, $MNT, $LOG,
# $DAEMON_PID. DBFS_TEST_PLAIN_DIR=1 uses a plain directory instead of a
# mount. Every wait is bounded; every process started here is stopped by pid.

set -euo pipefail

: "${DBFS_BIN_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}"
DBFS_PLAIN=${DBFS_TEST_PLAIN_DIR:-0}
T=""
VOL=""
MNT=""
LOG=""
DAEMON_PID=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
die() {
  echo "FAIL: $*" >&2
  exit 1
}
skip() {
  echo "SKIP: $*" >&2
  exit 77
}
require() {
  for p in "$@"; do
    command -v "$p" >/dev/null 2>&1 || skip "$p is not installed"
  done
}

is_mounted() { awk -v m="$1" '$2 == m { found = 1 } END { exit !found }' /proc/mounts; }

# wait_until TIMEOUT_S CMD...: polls CMD every 50 ms until it succeeds.
wait_until() {
  local timeout=$1
  shift
  local deadline=$((SECONDS + timeout))
  while ! "$@"; do
    if ((SECONDS >= deadline)); then return 1; fi
    sleep 0.05
  done
}

pid_alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }
pid_gone() { ! pid_alive "$1"; }

dbfs_mount() {
  if [ "$DBFS_PLAIN" = 1 ]; then return 0; fi
  echo "$ dbfs-mount $VOL $MNT -f -o ${DBFS_MOUNT_OPTS:-allow_other}" >>"$LOG"
  # --pdeathsig: if this script is SIGKILLed (e.g. a ctest timeout), the
  # daemon gets SIGTERM and unmounts instead of lingering.
  local pdeath=()
  if setpriv --help 2>/dev/null | grep -q pdeathsig; then pdeath=(setpriv --pdeathsig TERM --); fi
  "${pdeath[@]}" "$DBFS_BIN_DIR/dbfs-mount" "$VOL" "$MNT" -f -o "${DBFS_MOUNT_OPTS:-allow_other}" \
    >>"$LOG" 2>&1 &
  DAEMON_PID=$!
  mount_up_or_dead() { is_mounted "$MNT" || ! pid_alive "$DAEMON_PID"; }
  if ! wait_until 10 mount_up_or_dead; then
    die "mount did not appear within 10 s"
  fi
  if ! is_mounted "$MNT"; then
    wait "$DAEMON_PID" 2>/dev/null || true
    DAEMON_PID=""
    die "dbfs-mount exited before the mount was live"
  fi
}

dbfs_unmount() {
  if [ "$DBFS_PLAIN" = 1 ]; then return 0; fi
  sync_unmount() { fusermount3 -u "$MNT" >>"$LOG" 2>&1 || ! is_mounted "$MNT"; }
  wait_until 10 sync_unmount || die "fusermount3 -u $MNT failed"
  if [ -n "$DAEMON_PID" ]; then
    if ! wait_until 60 pid_gone "$DAEMON_PID"; then
      kill -9 "$DAEMON_PID" 2>/dev/null || true
      DAEMON_PID=""
      die "dbfs-mount did not exit within 60 s of the unmount"
    fi
    local rc=0
    wait "$DAEMON_PID" || rc=$?
    DAEMON_PID=""
    [ "$rc" = 0 ] || die "dbfs-mount exited with $rc after unmount"
  fi
}

dbfs_remount() {
  dbfs_unmount
  dbfs_mount
}

dbfs_cleanup() {
  local rc=$?
  set +e
  cd /
  if [ "$DBFS_PLAIN" != 1 ] && [ -n "$MNT" ]; then
    if is_mounted "$MNT"; then
      fusermount3 -u "$MNT" >>"$LOG" 2>&1 || fusermount3 -u "$MNT" >>"$LOG" 2>&1
    fi
    if [ -n "$DAEMON_PID" ]; then
      wait_until 30 pid_gone "$DAEMON_PID" || kill -9 "$DAEMON_PID" 2>/dev/null
      wait "$DAEMON_PID" 2>/dev/null
    fi
    if is_mounted "$MNT"; then umount -l "$MNT" 2>/dev/null; fi
  fi
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then
    echo "---- $LOG (tail) ----" >&2
    [ -n "$LOG" ] && tail -c 16000 "$LOG" >&2
    echo "---- end of log ----" >&2
  fi
  if [ -n "$T" ]; then
    if [ -n "$MNT" ] && is_mounted "$MNT"; then
      echo "still mounted: leaving $T" >&2
    elif [ -n "${DBFS_TEST_KEEP:-}" ]; then
      echo "kept $T" >&2
    else
      rm -rf --one-file-system "$T"
    fi
  fi
  exit "$rc"
}

# DBFS_IO_URING=on (the integration_uring.* variants, tests/integration/
# CMakeLists.txt): every dbfs-mount serves over io_uring. The fuse module must
# allow it: the parameter is turned on here (root), else the test is skipped
# and says why.
uring_ready() {
  [ "${DBFS_IO_URING:-}" = on ] || return 0
  local p=${DBFS_FUSE_URING_PARAM:-/sys/module/fuse/parameters/enable_uring}
  [ -e "$p" ] || skip "io_uring variant: $p is missing (kernel without FUSE-over-io_uring)"
  if [ "$(cat "$p")" != Y ]; then echo Y >"$p" 2>/dev/null || true; fi
  [ "$(cat "$p")" = Y ] || skip "io_uring variant: $p is $(cat "$p") and cannot be set to Y here"
}

dbfs_setup() {
  [ "$(id -u)" = 0 ] || skip "integration tests run as root"
  uring_ready
  T=$(mktemp -d /tmp/dbfs-sh-XXXXXX)
  chmod 755 "$T"
  VOL=$T/volume
  MNT=$T/mnt
  LOG=$T/daemon.log
  mkdir -p "$MNT"
  : >"$LOG"
  trap dbfs_cleanup EXIT
  trap 'exit 130' INT TERM
  if [ "$DBFS_PLAIN" != 1 ]; then
    [ -x "$DBFS_BIN_DIR/mkfs.dbfs" ] || die "mkfs.dbfs not found in $DBFS_BIN_DIR"
    [ -x "$DBFS_BIN_DIR/dbfs-mount" ] || die "dbfs-mount not found in $DBFS_BIN_DIR"
    "$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL" >>"$LOG" 2>&1 || die "mkfs.dbfs failed"
    dbfs_mount
  fi
  log "using $MNT ($([ "$DBFS_PLAIN" = 1 ] && echo plain dir || echo dbfs mount))"
}

# fsck_clean [VOL]: the full check (fsck.dbfs -n -f) of the unmounted volume
# must exit 0 and print no warning. A missing fsck.dbfs is a failure.
fsck_clean() {
  local vol=${1:-$VOL}
  if [ "$DBFS_PLAIN" = 1 ]; then return 0; fi
  [ -x "$DBFS_BIN_DIR/fsck.dbfs" ] || die "fsck.dbfs not found in $DBFS_BIN_DIR (build it)"
  local rc=0 out
  out=$("$DBFS_BIN_DIR/fsck.dbfs" -n -f "$vol" 2>&1) || rc=$?
  echo "$ fsck.dbfs -n -f $vol -> $rc" >>"$LOG"
  echo "$out" >>"$LOG"
  [ "$rc" = 0 ] || die "fsck.dbfs -n -f exited $rc: $out"
  if grep -q ": warning: " <<<"$out"; then die "fsck.dbfs -n -f warned on a clean volume: $out"; fi
}

# tree_manifest DIR: one line per entry with type, mode, size, mtime, content hash.
tree_manifest() {
  (cd "$1" && find . -printf '%p %y %m %U:%G %n %s %T@ %l\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r md5sum)
}

dbfs_pass() {
  log "PASS"
}

# gen_c_project DIR N: writes a small C project (N modules + main + Makefile)
# whose program prints "total=<sum of i*i for i in 1..N>".
gen_c_project() {
  local dir=$1 n=$2 i
  mkdir -p "$dir/src" "$dir/include"
  {
    echo "#pragma once"
    for i in $(seq 1 "$n"); do echo "int module$i(void);"; done
  } >"$dir/include/modules.h"
  for i in $(seq 1 "$n"); do
    cat >"$dir/src/module$i.c" <<EOC
#include "modules.h"
static int helper$i(int x) { return x * x; }
int module$i(void) { return helper$i($i); }
EOC
  done
  {
    echo '#include <stdio.h>'
    echo '#include "modules.h"'
    echo 'int main(void) {'
    echo '  long total = 0;'
    for i in $(seq 1 "$n"); do echo "  total += module$i();"; done
    echo '  printf("total=%ld\n", total);'
    echo '  return 0;'
    echo '}'
  } >"$dir/src/main.c"
  cat >"$dir/Makefile" <<'EOM'
CC ?= cc
CFLAGS ?= -O1 -Wall -Werror
SRCS := $(wildcard src/*.c)
OBJS := $(patsubst src/%.c,obj/%.o,$(SRCS))

prog: $(OBJS)
	$(CC) -o $@ $(OBJS)

obj/%.o: src/%.c include/modules.h | obj
	$(CC) $(CFLAGS) -Iinclude -c -o $@ $<

obj:
	mkdir -p obj

clean:
	rm -rf obj prog
.PHONY: clean
EOM
}

c_project_expected() {
  local n=$1 i s=0
  for i in $(seq 1 "$n"); do s=$((s + i * i)); done
  echo "total=$s"
}
