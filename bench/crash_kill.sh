#!/bin/bash
# Usage: bench/crash_kill.sh [ROUNDS]   (default 1000)
#
# Runs the kill -9 crash test (tests/integration/crash_kill_test.cc) for
# ROUNDS rounds: a workload of creates/writes/fsyncs/renames/mkdirs on a DBFS
# mount, the daemon SIGKILLed at a random moment, fsck -n, remount, and an
# oracle check that the tree is a prefix of the completed operations holding
# every completed rename and every fsync'ed byte, with no torn write.
#
# Environment: BUILD_DIR (default <repo>/build), DBFS_CRASH_SYNC_ROUNDS
# (rounds of the -o sync variant, default ROUNDS/10), DBFS_CRASH_SEED,
# DBFS_CRASH_MAX_DELAY_MS, DBFS_CRASH_STRICT=1, DBFS_TEST_PLAIN_DIR=1.
set -euo pipefail
ROUNDS=${1:-1000}
case "$ROUNDS" in '' | *[!0-9]*) echo "usage: $0 [ROUNDS]" >&2; exit 2 ;; esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$REPO/build}
BIN=$BUILD/bin/crash_kill_test
if [ ! -x "$BIN" ]; then
  echo "$BIN not found; build it first:" >&2
  echo "  cmake -S $REPO -B $BUILD && cmake --build $BUILD -j2 --target crash_kill_test mkfs_dbfs dbfs_mount fsck_dbfs" >&2
  exit 2
fi
export DBFS_BIN_DIR=${DBFS_BIN_DIR:-$BUILD/bin}
export DBFS_CRASH_ROUNDS=$ROUNDS
# The -o sync variant (every completed op must survive) gets a tenth.
export DBFS_CRASH_SYNC_ROUNDS=${DBFS_CRASH_SYNC_ROUNDS:-$(((ROUNDS + 9) / 10))}
start=$SECONDS
rc=0
"$BIN" --gtest_filter='CrashKill.*' --gtest_color=no || rc=$?
echo "crash_kill.sh: $ROUNDS rounds in $((SECONDS - start)) s: $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
