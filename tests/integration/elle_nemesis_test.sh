#!/usr/bin/env bash
# `dbfs elle run --nemesis kill`: the runner mounts the volume itself,
# SIGKILLs the daemon twice during a durable list-append run, clears the
# stale mount and remounts; in-flight commits become :info, the kills appear
# as :process :nemesis ops, and the history is strictly serializable — no
# acknowledged commit was lost. The volume is fsck-clean afterwards and the
# runner leaves no mount behind.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "the kill nemesis needs a DBFS mount"
DBFS=$DBFS_BIN_DIR/dbfs
dbfs_setup
cd /
# The runner mounts the volume itself (it must restart the daemon).
dbfs_unmount

RUNNER_PID=""
not_mounted() { ! is_mounted "$MNT"; }
stop_runner() {
  if [ -n "$RUNNER_PID" ]; then
    # Its daemon gets SIGTERM when it dies (PR_SET_PDEATHSIG) and unmounts.
    kill -TERM "$RUNNER_PID" 2>/dev/null || true
    wait_until 30 pid_gone "$RUNNER_PID" || kill -KILL "$RUNNER_PID" 2>/dev/null || true
    wait "$RUNNER_PID" 2>/dev/null || true
    RUNNER_PID=""
    wait_until 30 not_mounted || true
  fi
}
trap 'rc=$?; stop_runner; (exit $rc); dbfs_cleanup' EXIT

# run_nemesis SEED: 20 clients, 2,000 durable transactions, 2 kills.
run_nemesis() {
  local rc=0
  "$DBFS" elle run --volume "$VOL" --mount "$MNT" --mount-bin "$DBFS_BIN_DIR/dbfs-mount" \
    --daemon-log "$LOG" --clients 20 --ops 2000 --durable --nemesis kill --kills 2 --seed "$1" \
    --out "$T/history.edn" >"$T/run.out" 2>&1 &
  RUNNER_PID=$!
  wait "$RUNNER_PID" || rc=$?
  RUNNER_PID=""
  grep -E '^(elle run:|committed |nemesis:|;; (VALID|INVALID))' "$T/run.out" >&2 || true
  [ "$rc" = 0 ] || { tail -30 "$T/run.out" >&2; die "elle run --nemesis kill exited $rc"; }
}

log "1. 20 clients x 2,000 durable transactions, daemon SIGKILLed twice"
# A kill catches commits in flight almost always; a new seed if it did not.
for seed in 1 2 3; do
  run_nemesis "$seed"
  info=$(grep -c '^{:type :info, :f :txn' "$T/history.edn" || true)
  [ "$info" -gt 0 ] && break
  log "seed $seed: no transaction was in doubt at the kills; again"
done

log "2. the verdict"
grep -q '^{:valid? true' "$T/run.out" || die "no ':valid? true' verdict"
grep -q 'checked strict serializability' "$T/run.out" || die "--durable with kills must check realtime order"
committed=$(sed -n 's/^committed \([0-9]*\),.*/\1/p' "$T/run.out")
[ "${committed:-0}" -gt 0 ] || die "nothing committed"
grep -q 'commits/s' "$T/run.out" || die "no throughput line"
[ "$info" -gt 0 ] || die "no :info transaction in three runs with kills"
reported_info=$(sed -n 's/.*unknown (info) \([0-9]*\),.*/\1/p' "$T/run.out")
[ "$reported_info" = "$info" ] || die "the summary says $reported_info :info, the history has $info"

log "3. the nemesis ops in the history"
kills=$(grep -c '^{:type :info, :f :kill, .*:process :nemesis' "$T/history.edn" || true)
starts=$(grep -c '^{:type :info, :f :start, .*:process :nemesis' "$T/history.edn" || true)
[ "$kills" -ge 2 ] || die "$kills :kill nemesis completions, expected 2"
[ "$starts" = "$kills" ] || die "$kills kills but $starts restarts"
grep -q '^nemesis: 2 kills' "$T/run.out" || die "no nemesis summary line"
# The real check, again from the file: valid under --realtime.
"$DBFS" elle check --realtime "$T/history.edn" >"$T/check.out" || die "dbfs elle check --realtime failed"
[ "$(grep -c 'SIGKILL dbfs-mount pid' "$LOG" || true)" -ge "$kills" ] || die "the daemon log shows no kills"

log "4. nothing left mounted; the volume is clean"
is_mounted "$MNT" && die "the runner left $MNT mounted"
[ ! -e "$VOL/elle.sock" ] || die "elle.sock in the volume (it belongs in the runtime directory)"
fsck_clean
dbfs_pass
