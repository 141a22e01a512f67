#!/usr/bin/env bash
# The Elle protocol server (elle/server.h) and `dbfs elle run` through a real
# mount: bad frames never harm the daemon, TCP needs AUTH, a short list-append
# run is valid, and the negative control (-o elle_weaken=1) is caught.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "the Elle protocol needs a DBFS mount"
require python3
DBFS=$DBFS_BIN_DIR/dbfs
PROBE=${DBFS_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}/tests/elle/protocol_probe.py
PORT=$((20000 + RANDOM % 20000))
DBFS_MOUNT_OPTS="allow_other,elle_port=$PORT"
dbfs_setup
cd /

# The socket and token live in the mount's runtime directory
# (fuse/runtime_dir.h), named by the daemon's log line.
runtime_dir() {
  grep -o 'elle protocol server on [^ ]*' "$LOG" | tail -1 | sed 's/.* on //; s|/elle.sock$||'
}
log "1. socket and token"
wait_until 10 grep -q 'elle protocol server on' "$LOG" || die "the Elle server did not start"
RUN=$(runtime_dir)
case "$RUN" in "$VOL"*) die "runtime files inside the volume: $RUN" ;; esac
wait_until 10 test -S "$RUN/elle.sock" || die "no $RUN/elle.sock"
[ "$(stat -c %a "$RUN/elle.sock")" = 600 ] || die "elle.sock mode $(stat -c %a "$RUN/elle.sock")"
[ "$(stat -c %a "$RUN/elle.token")" = 600 ] || die "elle.token mode $(stat -c %a "$RUN/elle.token")"
grep -Eq '^[0-9a-f]{32}$' "$RUN/elle.token" || die "elle.token is not 32 hex digits"
if command -v ss >/dev/null 2>&1; then
  ss -ltn | grep -q "127.0.0.1:$PORT " || die "not listening on 127.0.0.1:$PORT"
  ss -ltn | grep -Eq "(0.0.0.0|\*|\[::\]):$PORT " && die "listening on a non-loopback address"
fi

log "2. bad frames, foreign transactions, dropped connections, TCP without AUTH"
python3 "$PROBE" "$RUN" "$MNT" "$PORT" >>"$LOG" 2>&1 || { tail -5 "$LOG" >&2; die "protocol probe failed"; }
pid_alive "$DAEMON_PID" && is_mounted "$MNT" || die "the daemon died"

log "3. dbfs elle run --clients 50 --ops 5000 is valid"
rc=0
"$DBFS" elle run --mount "$MNT" --clients 50 --ops 5000 --out "$T/history.edn" >"$T/run.out" 2>&1 || rc=$?
cat "$T/run.out" >&2
[ "$rc" = 0 ] || die "elle run exited $rc"
grep -q ':valid? true' "$T/run.out" || die "no ':valid? true' verdict"
grep -q 'commits/s' "$T/run.out" || die "no throughput line"
ok=$(sed -n 's/^committed \([0-9]*\),.*/\1/p' "$T/run.out")
[ "${ok:-0}" -gt 1000 ] || die "only ${ok:-0} transactions committed"

log "3a. pipelined transactions (one write per transaction) are valid too"
rc=0
"$DBFS" elle run --mount "$MNT" --pipeline --clients 50 --ops 5000 --out "$T/pipe.edn" >"$T/pipe.out" 2>&1 || rc=$?
tail -3 "$T/pipe.out" >&2
[ "$rc" = 0 ] || die "elle run --pipeline exited $rc"
grep -q ':valid? true' "$T/pipe.out" || die "pipelined run: no ':valid? true' verdict"
ok=$(sed -n 's/^committed \([0-9]*\),.*/\1/p' "$T/pipe.out")
[ "${ok:-0}" -gt 1000 ] || die "pipelined run: only ${ok:-0} transactions committed"

log "3b. the same workload as dbfs tx run processes through the mount (--via posix)"
rc=0
"$DBFS" elle run --mount "$MNT" --via posix --clients 4 --ops 100 --out "$T/posix.edn" >"$T/posix.out" 2>&1 || rc=$?
tail -3 "$T/posix.out" >&2
[ "$rc" = 0 ] || die "elle run --via posix exited $rc"

log "3c. snapshot isolation allows write skew: only G2-item may (and should) show"
# Every run may show G2-item and nothing else; an empty list would also pass
# an isolation level that is really serializable, so some run (of at most
# three, seeds fixed) must show write skew.
si_g2=0
for seed in 1 2 3; do
  rc=0
  "$DBFS" elle run --mount "$MNT" --isolation snapshot --clients 50 --ops 5000 --seed "$seed" \
    --out "$T/si.edn" >"$T/si.out" 2>&1 || rc=$?
  grep -E '^committed|:anomaly-types' "$T/si.out" >&2
  [ "$rc" = 0 ] || [ "$rc" = 1 ] || die "elle run --isolation snapshot exited $rc"
  grep -Eq ':anomaly-types \[(:G2-item)?\]' "$T/si.out" || die "snapshot isolation showed more than G2-item"
  if grep -Eq ':anomaly-types \[:G2-item\]' "$T/si.out"; then
    si_g2=1
    break
  fi
done
[ "$si_g2" = 1 ] || die "snapshot isolation never showed write skew (G2-item) in 3 runs: is it serializable?"

log "4. negative control: -o elle_weaken=1 must be caught"
dbfs_unmount
DBFS_MOUNT_OPTS="allow_other,elle_weaken=1"
dbfs_mount
wait_until 10 test -S "$RUN/elle.sock" || die "no $RUN/elle.sock"
rc=0
"$DBFS" elle run --mount "$MNT" --clients 50 --ops 3000 --keys 3 --out "$T/weak.edn" >"$T/weak.out" 2>&1 || rc=$?
tail -20 "$T/weak.out" >&2
[ "$rc" = 1 ] || die "weakened isolation: elle run exited $rc, expected 1 (anomalies)"
grep -q ':valid? false' "$T/weak.out" || die "no ':valid? false' verdict"
# Isolation anomalies proper, not only torn appends.
grep -Eq ':anomaly-types .*(:G0|:G1c|:G-single|:G2-item|:lost-update)' "$T/weak.out" ||
  die "weakened isolation: no cycle or lost-update anomaly reported"

dbfs_unmount
[ ! -e "$RUN/elle.sock" ] || die "elle.sock left behind after unmount"
[ ! -e "$RUN" ] || die "runtime directory $RUN left behind after unmount"
fsck_clean
dbfs_pass
