#!/bin/bash
# Usage: bench/smoke_test.sh [--quick | --smoke] [BIN_DIR]
#
# CI check that the benchmark suite itself works (never a performance
# pass/fail): runs bench/run.sh --quick (CI: every workload at reduced sizes,
# 2-3 repetitions, a few minutes on 2 cores) or --smoke (tiny sizes, one
# repetition, under a minute) into a temporary results directory and checks
# that the CSV has a row with a positive median for every workload and
# target, and that the chart was written.
# Needs root (run.sh mounts a tmpfs and FUSE file systems). BIN_DIR defaults
# to $DBFS_BIN_DIR, else run.sh's default (build/bin, then build-bench/bin).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
MODE=--smoke
case "${1:-}" in --quick | --smoke) MODE=$1; shift ;; esac
BIN=${1:-${DBFS_BIN_DIR:-}}
if [ "$(id -u)" != 0 ]; then
  echo "smoke_test.sh: needs root; skipping"
  exit 77 # ctest SKIP_RETURN_CODE
fi
OUT=$(mktemp -d /tmp/dbfs-bench-smoke.XXXXXX)
trap 'rm -rf "$OUT"' EXIT
args=("$MODE" --out "$OUT")
[ -n "$BIN" ] && args+=(--bin "$BIN")
"$REPO/bench/run.sh" "${args[@]}"

csv=$(ls "$OUT"/*.csv)
png=$(ls "$OUT"/*.png)
[ -s "$png" ] || { echo "smoke_test.sh: no chart" >&2; exit 1; }
python3 - "$csv" <<'EOF'
import csv, sys
rows = {(r["workload"], r["target"]): r for r in csv.DictReader(open(sys.argv[1]))}
all3 = ["dbfs", "passthrough", "direct"]
expected = {w: all3 for w in [
    "create_1t", "stat_1t", "readdir", "rename_1t", "unlink_1t",
    "create_8t", "stat_8t", "rename_8t", "unlink_8t",
    "fsync_4k_8t", "fsync_4k_32t", "seq_write_1M", "seq_read_1M",
    "rand_read_4k", "rand_write_4k", "rand_write_4k_fsync",
    "git_clone", "git_checkout", "untar_make_j2"]}
expected.update({w: ["dbfs"] for w in ["tx_commits_1c", "tx_commits_16c", "tx_commits_64c",
                                   "tx_commits_256c", "proto_commits_1c", "proto_commits_16c",
                                   "proto_commits_64c", "proto_commits_256c", "recovery_mount", "recovery_replay"]})
bad = []
for w, targets in expected.items():
    for t in targets:
        r = rows.get((w, t))
        if r is None:
            bad.append(f"missing row {w}/{t}")
        elif not float(r["median"]) > 0 and w != "recovery_replay":
            bad.append(f"non-positive median {w}/{t}: {r['median']}")
        elif t == "dbfs" and targets == all3 and not r["ratio_dbfs_vs_passthrough"]:
            bad.append(f"no ratio for {w}")
if bad:
    print("smoke_test.sh: FAIL\n  " + "\n  ".join(bad), file=sys.stderr)
    sys.exit(1)
print(f"smoke_test.sh: PASS ({len(rows)} rows)")
EOF
