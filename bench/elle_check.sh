#!/bin/bash
# Usage: bench/elle_check.sh [--bin DIR] [--reps N]
#
# Speed of the Elle list-append checker on generated histories (the
# GeneratedHistory tests of tests/elle/generated_history_test.cc: 5,000 and
# 25,000 transactions of 200 clients, with and without realtime edges).
# The tests assert bounds on the checker's work (graph edges), never time;
# this prints the times they report, the median of N runs (default 3).
# DIR holds elle_tests (default: build/bin of this repository).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN="$REPO/build/bin" REPS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN=$2; shift ;;
    --reps) REPS=$2; shift ;;
    -h | --help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "elle_check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$BIN/elle_tests" ] || { echo "elle_check.sh: $BIN/elle_tests not built" >&2; exit 1; }
T=$(mktemp -d /tmp/dbfs-elle-check-XXXXXX)
trap 'rm -rf "$T"' EXIT
for i in $(seq 1 "$REPS"); do
  "$BIN/elle_tests" --gtest_filter='GeneratedHistory.*' >"$T/run$i.out" 2>&1 ||
    { cat "$T/run$i.out" >&2; echo "elle_check.sh: the tests failed" >&2; exit 1; }
done
# Lines "... checked in X s ...": the median of X per distinct line (the
# time replaced by a placeholder is the key).
cat "$T"/run*.out | grep -E 'checked in [0-9.]+ s' |
  awk '{ t = ""; for (i = 1; i <= NF; i++) if ($(i-1) == "in" && $(i+1) == "s") { t = $i; $i = "@" }
         key = $0; n[key]++; v[key, n[key]] = t }
       END { for (k in n) { m = n[k]; c = 0
               for (i = 1; i <= m; i++) a[i] = v[k, i]
               for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { x = a[i]; a[i] = a[j]; a[j] = x }
               med = a[int((m + 1) / 2)]; sub("@", med, k); print k } }' | sort
