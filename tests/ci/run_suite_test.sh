#!/usr/bin/env bash
# tests/ci/run_suite.sh must fail a run in which a test skipped (exit 77 or
# gtest's "[  SKIPPED ]"), pass a run in which every test ran, and refuse to
# start without root. Runs it on a throwaway ctest project.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/dbfs-runsuite-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

make_project() { # DIR BODY
  mkdir -p "$1/src"
  { echo 'cmake_minimum_required(VERSION 3.22)'; echo 'project(t NONE)'; echo 'enable_testing()'; echo "$2"; } >"$1/src/CMakeLists.txt"
  cmake -S "$1/src" -B "$1/build" >/dev/null
}

make_project "$T/ok" 'add_test(NAME a COMMAND true)
add_test(NAME b COMMAND true)'
out=$("$HERE/run_suite.sh" --test-dir "$T/ok/build" 2>&1) || fail "all-pass run failed: $out"
grep -q "2 tests ran, none skipped" <<<"$out" || fail "no summary: $out"

make_project "$T/skip77" 'add_test(NAME a COMMAND true)
add_test(NAME skipper COMMAND sh -c "exit 77")
set_tests_properties(skipper PROPERTIES SKIP_RETURN_CODE 77)'
rc=0
out=$("$HERE/run_suite.sh" --test-dir "$T/skip77/build" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "a run with an exit-77 skip exited $rc: $out"
grep -q "  skipper (" <<<"$out" || fail "the skipped test is not named: $out"

make_project "$T/gskip" 'add_test(NAME gt COMMAND sh -c "echo \"[  SKIPPED ] Fixture.Test\"")
set_tests_properties(gt PROPERTIES SKIP_REGULAR_EXPRESSION "\\[  SKIPPED \\]")'
rc=0
out=$("$HERE/run_suite.sh" --test-dir "$T/gskip/build" 2>&1) || rc=$?
[ "$rc" = 1 ] || fail "a run with a gtest skip exited $rc: $out"
grep -q "  gt (" <<<"$out" || fail "the gtest-skipped test is not named: $out"

make_project "$T/failing" 'add_test(NAME bad COMMAND false)'
rc=0
out=$("$HERE/run_suite.sh" --test-dir "$T/failing/build" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "a failing run passed: $out"

# Without root it refuses before running anything.
chmod 755 "$T" "$T/ok" "$T/ok/build"
rc=0
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups "$HERE/run_suite.sh" --test-dir "$T/ok/build" 2>&1) || rc=$?
[ "$rc" = 2 ] || fail "a non-root run exited $rc: $out"
grep -q "needs root" <<<"$out" || fail "no clear message without root: $out"
echo PASS
