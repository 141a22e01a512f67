#!/bin/bash
# Usage: bench/powerloss.sh [N] [--seed S] [--mode all|drop|prefix|random] [--repeat]
#
# Runs N simulated power cuts (default 100) of DBFS on plfs, the FUSE layer
# that keeps un-synced writes in memory (tests/powerloss/, docs/powerloss.md).
# Each cut: fresh volume made inside plfs, a workload on the DBFS mount, a
# power cut at a random moment (plfs drops or tears what was not fsync'ed),
# fsck.dbfs -n, recovery, and an oracle check that every acknowledged-durable
# operation survived and the tree is the state after a prefix of the
# operations. Seeds S, S+1, ... (default S from the clock); --repeat runs
# seed S N times (the cut moment also depends on timing); --mode fixes what
# survives a cut (default: all three, by seed).
#
# Prints "N cuts, 0 violations" and exits 0, or prints the first violation
# with its reproducer seed and exits 1 (2: not built).
#
# Environment: BUILD_DIR (default <repo>/build), DBFS_BIN_DIR (DBFS tools,
# default $BUILD_DIR/bin), PLFS_BIN, POWERLOSS_MAX_DELAY_MS (default 1000),
# POWERLOSS_KEEP=1 (keep every cut's directory), POWERLOSS_AVOID_KNOWN_BUGS=1
# (a workload that steers clear of the DBFS bugs listed in docs/powerloss.md,
# to look for others).
set -euo pipefail
N=100
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seed | --mode) ARGS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    --repeat) ARGS+=("$1"); shift ;;
    '' | *[!0-9]*) echo "usage: $0 [N] [--seed S] [--mode all|drop|prefix|random] [--repeat]" >&2; exit 2 ;;
    *) N=$1; shift ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD_DIR:-$REPO/build}
BIN=$BUILD/bin/powerloss_test
if [ ! -x "$BIN" ]; then
  echo "$BIN not found; build it first:" >&2
  echo "  cmake -S $REPO -B $BUILD -DDBFS_POWERLOSS_TESTS=ON && cmake --build $BUILD -j2 --target powerloss_test" >&2
  exit 2
fi
export DBFS_BIN_DIR=${DBFS_BIN_DIR:-$BUILD/bin}
export PLFS_BIN=${PLFS_BIN:-$BUILD/bin/plfs}
start=$SECONDS
rc=0
"$BIN" --bench "$N" "${ARGS[@]}" || rc=$?
echo "powerloss.sh: $((SECONDS - start)) s" >&2
exit $rc
