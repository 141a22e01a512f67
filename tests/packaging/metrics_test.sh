#!/usr/bin/env bash
# Metrics (docs/metrics.md): -o metrics_port= serves the Prometheus text
# format on 127.0.0.1 only; after real work the counters, the latency
# histograms of FUSE operations, commits, WAL syncs, LMDB flushes and
# checkpoints, open transactions and conflicts by reason show it; `dbfs
# stats --json` is the same data as JSON; every exposed metric is in
# docs/metrics.md; a taken port is a clear mount error; `dbfs top` prints
# its table in a pipe (batch mode).
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require curl python3
DBFS=$DBFS_BIN_DIR/dbfs

# A free loopback port, and a listener holding another one.
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
PORT=$(free_port)
DBFS_MOUNT_OPTS="allow_other,metrics_port=$PORT"
dbfs_setup
HOLDER=""
WRITER=""
stop_helpers() {
  for p in $HOLDER $WRITER; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
}
trap 'stop_helpers; dbfs_cleanup' EXIT
URL=http://127.0.0.1:$PORT/metrics

# Work of every kind timed: FUSE requests, commits, a durable fsync (WAL
# sync), a checkpoint (LMDB flush + checkpoint), a transaction and a conflict.
head -c 300000 /dev/urandom >"$MNT/data"
cat "$MNT/data" >/dev/null
python3 -c "import os; fd = os.open('$MNT/data', os.O_RDWR); os.fsync(fd); os.close(fd)"
"$DBFS" checkpoint --mount "$MNT" >/dev/null || die "checkpoint failed"
echo 1 >"$MNT/f"
id=$("$DBFS" tx run --keep --mount "$MNT" -- sh -c "cat $MNT/f >/dev/null; echo x > $MNT/g") ||
  die "tx run --keep failed"
id=$(echo "$id" | grep -o '[0-9]\+' | head -1)
# While it is open: one open transaction.
curl -sf "$URL" >"$T/open.txt" || die "curl $URL failed"
grep -qx 'dbfs_open_transactions 1' "$T/open.txt" || die "open transactions: $(grep open_tr "$T/open.txt")"
echo 2 >"$MNT/f"  # changes what the transaction read
rc=0
"$DBFS" tx commit "$id" --mount "$MNT" 2>/dev/null || rc=$?
[ "$rc" = 75 ] || die "the conflicting commit exited $rc, not 75"

curl -sf "$URL" >"$T/m.txt" || die "curl $URL failed"
value() { awk -v n="$1" '$1 == n { print $2 }' "$T/m.txt"; }
ge() {  # ge METRIC MIN
  local v
  v=$(value "$1")
  [ -n "$v" ] || die "$1 is missing"
  python3 -c "import sys; sys.exit(0 if float('$v') >= float('$2') else 1)" || die "$1 = $v < $2"
}
ge dbfs_commits_total 3
ge dbfs_wal_syncs_total 1
ge dbfs_checkpoints_total 1
ge dbfs_fuse_write_bytes_total 300000
ge dbfs_fuse_read_bytes_total 300000
ge 'dbfs_conflicts_total{reason="validation"}' 1
ge dbfs_tx_conflicts_total 1
[ "$(value dbfs_open_transactions)" = 0 ] || die "a transaction is still open"
for op in fuse_write fuse_read fuse_create fuse_lookup commit wal_sync lmdb_flush checkpoint; do
  ge "dbfs_latency_seconds_count{op=\"$op\"}" 1
  grep -q "^dbfs_latency_seconds_bucket{op=\"$op\",le=\"+Inf\"} " "$T/m.txt" ||
    die "no +Inf bucket for $op"
done
grep -q '^# TYPE dbfs_latency_seconds histogram' "$T/m.txt" || die "no histogram TYPE line"

# Every metric exposed is documented.
for name in $(grep -v '^#' "$T/m.txt" | sed 's/[{ ].*//' |
                sed -E 's/_(bucket|sum|count)$//' | sort -u); do
  grep -q "\`$name" "$DBFS_SOURCE_DIR/docs/metrics.md" || die "$name is not in docs/metrics.md"
done

# --json: the same data; the histograms are consistent.
"$DBFS" stats --json --mount "$MNT" >"$T/m.json" || die "dbfs stats --json failed"
python3 - "$T/m.json" <<'PY' || die "dbfs stats --json is wrong: $(head -c 400 "$T/m.json")"
import json, sys
m = json.load(open(sys.argv[1]))
c = m["counters"]
assert c["commits"] >= 3 and c["fuse_write_bytes"] >= 300000, c
assert m["conflicts"]["validation"] >= 1, m["conflicts"]
assert m["open_transactions"] == 0
for op in ("commit", "wal_sync", "lmdb_flush", "checkpoint", "fuse_write"):
    h = m["latency"][op]
    counts = [b["count"] for b in h["buckets"]]
    assert counts == sorted(counts) and counts[-1] == h["count"] >= 1, (op, h)
    assert h["buckets"][-1]["le"] == "+Inf" and h["sum_seconds"] > 0, (op, h)
PY
grep -q '^dbfs_latency_seconds_count{op="commit"}' <<<"$("$DBFS" stats --prometheus --mount "$MNT")" ||
  die "dbfs stats --prometheus lacks the histograms"

# Loopback only; other paths are 404.
listening=$(ss -ltn 2>/dev/null)
grep -q "127.0.0.1:$PORT " <<<"$listening" || die "not listening on 127.0.0.1:$PORT"
if grep -E "(0\.0\.0\.0|\*|\[::\]):$PORT " <<<"$listening" >/dev/null; then
  die "listening beyond loopback"
fi
code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/other")
[ "$code" = 404 ] || die "GET /other answered $code"

# dbfs top in a pipe: one table per iteration, rates of a running writer.
( while :; do echo x >>"$MNT/busy"; done ) &
WRITER=$!
"$DBFS" top --mount "$MNT" --interval 0.3 --iterations 2 >"$T/top.txt" || die "dbfs top failed"
kill "$WRITER"; wait "$WRITER" 2>/dev/null || true; WRITER=""
[ "$(grep -c '^OPERATION' "$T/top.txt")" = 2 ] || die "dbfs top did not print 2 tables: $(cat "$T/top.txt")"
grep -q $'\033' "$T/top.txt" && die "dbfs top wrote terminal escapes into a pipe"
awk '$1 == "fuse_write" && $2 > 0 { found = 1 } END { exit !found }' "$T/top.txt" ||
  die "dbfs top shows no fuse_write rate: $(cat "$T/top.txt")"
grep -q '^transactions: 0 open' "$T/top.txt" || die "dbfs top: no transactions line"
grep -q '^OPERATION' <<<"$("$DBFS" top --mount "$MNT" --once --interval 0.1)" || die "dbfs top --once"
# On a terminal (script(1) gives it one) it redraws the screen in place.
if command -v script >/dev/null 2>&1; then
  script -qec "$DBFS top --mount $MNT --interval 0.1 --iterations 2" /dev/null >"$T/top.tty" ||
    die "dbfs top on a terminal failed"
  [ "$(grep -o $'\033\\[H\033\\[2J' "$T/top.tty" | wc -l)" = 2 ] ||
    die "dbfs top did not redraw twice on a terminal: $(cat -v "$T/top.tty" | head -5)"
fi

# A port that is taken: the mount fails and says why.
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(1)
print(s.getsockname()[1], flush=True); time.sleep(120)' >"$T/holder.port" &
HOLDER=$!
wait_until 10 test -s "$T/holder.port" || die "no port holder"
taken=$(cat "$T/holder.port")
mkdir -p "$T/mnt2"
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$T/vol2"
if out=$("$DBFS_BIN_DIR/dbfs-mount" "$T/vol2" "$T/mnt2" -o "metrics_port=$taken" 2>&1); then
  fusermount3 -u "$T/mnt2" 2>/dev/null || true
  die "mount with a taken metrics port succeeded"
fi
[[ $out == *"metrics port 127.0.0.1:$taken"* ]] || die "unclear error: $out"
is_mounted "$T/mnt2" && die "left a mount behind"
dbfs_pass
