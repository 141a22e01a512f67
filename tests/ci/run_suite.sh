#!/usr/bin/env bash
# Usage: tests/ci/run_suite.sh [CTEST ARGS...]
#        tests/ci/run_suite.sh --preflight   (only the privilege checks)
#
# Runs ctest (with the given arguments, e.g. `--test-dir build -j2`) the way
# CI does: a skipped test is a failure. The suite mounts real volumes through
# /dev/fuse and runs crash, fsyncgate and shell integration tests that skip
# (GTEST_SKIP, exit 77) without root; ctest counts those as passing, so this
# script refuses to start without root and /dev/fuse, and fails when ctest's
# JUnit report lists any test as skipped or not run. A developer running a
# subset by hand with plain ctest may still skip.
set -uo pipefail

die() {
  echo "run_suite: $*" >&2
  exit 2
}

if [ "$(id -u)" != 0 ]; then
  die "the test suite needs root (it mounts volumes through FUSE, runs mount
helpers and kills daemons); run it as root, e.g. 'sudo $0 $*'. Refusing to
start, because without root most of the suite would skip."
fi
[ -c /dev/fuse ] || die "/dev/fuse is missing (load the fuse module); the mount tests cannot run"
if [ "${1:-}" = --preflight ]; then exit 0; fi

junit=$(mktemp /tmp/dbfs-ctest-junit-XXXXXX.xml)
trap 'rm -f "$junit"' EXIT

rc=0
ctest "$@" --output-junit "$junit" || rc=$?
if [ ! -s "$junit" ]; then
  echo "run_suite: ctest wrote no JUnit report (exit $rc)" >&2
  exit $((rc ? rc : 1))
fi

# One <testcase name="..." ... status="run|fail|skipped|disabled|notrun">
# per test (CMake's JUnit writer); anything but run/fail was not run.
not_run=$(grep -o '<testcase name="[^"]*"[^>]*status="[^"]*"' "$junit" |
  sed -n 's/^<testcase name="\([^"]*\)".*status="\([^"]*\)"$/\1 (\2)/p' |
  grep -v ' (run)$' | grep -v ' (fail)$' || true)
total=$(grep -c '<testcase name=' "$junit" || true)
if [ "${total:-0}" = 0 ]; then
  echo "run_suite: no test ran (check the ctest arguments: $*)" >&2
  exit 1
fi
if [ -n "$not_run" ]; then
  echo "run_suite: FAIL: $(wc -l <<<"$not_run") test(s) did not run; in CI a skip is a failure:" >&2
  sed 's/^/  /' <<<"$not_run" >&2
  exit 1
fi
echo "run_suite: $total tests ran, none skipped"
exit "$rc"
