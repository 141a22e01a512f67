#!/usr/bin/env bash
# Explicit transactions through the kernel with real processes: dbfs tx run,
# begin/commit/abort, isolation (also through the kernel's caches), conflicts,
# write skew, lost updates, and a daemon crash with open transactions.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "transactions need a DBFS mount"
dbfs_setup
DBFS=$DBFS_BIN_DIR/dbfs
SYNC=$T/sync   # rendezvous files live outside the mount
mkdir -p "$SYNC"
cd /

# wait_file PATH: bounded wait for a rendezvous file.
wait_file() { wait_until 20 test -e "$1" || die "timed out waiting for $1"; }

log "1. all-or-nothing: a reader never sees half of a multi-file commit"
for f in a b c d; do echo 0 > "$MNT/$f"; done
# The writer's sequence number (outside the mount, replaced atomically) is
# odd while a transaction runs; a read pair that began at an odd number or
# saw it change overlapped a commit. The race must be shown to run: at
# least MIN_OVERLAPS such reads (the writer goes on until then, at most
# 400 transactions), not a fixed time.
MIN_OVERLAPS=20
echo 0 > "$SYNC/seq"
echo 0 > "$SYNC/overlaps"
setseq() { echo "$1" > "$SYNC/seq.tmp" && mv "$SYNC/seq.tmp" "$SYNC/seq"; }
(
  set +e
  torn=0
  overlaps=0
  # Each commit writes the same increasing number to all four files. Reading
  # them one after another can straddle commits, but with atomic commits the
  # values read in order can only grow; a half-visible commit shows a newer
  # value before an older one, in one of the two reading orders.
  mono() { local prev=0 v; for v in "$@"; do [ "$v" -ge "$prev" ] || return 1; prev=$v; done; }
  while [ ! -e "$SYNC/stop-reader" ]; do
    s0=$(cat "$SYNC/seq")
    mono $(cat "$MNT/a" "$MNT/b" "$MNT/c" "$MNT/d") || torn=$((torn + 1))
    mono $(cat "$MNT/d" "$MNT/c" "$MNT/b" "$MNT/a") || torn=$((torn + 1))
    s1=$(cat "$SYNC/seq")
    if ((s0 % 2 == 1 || s1 != s0)); then
      overlaps=$((overlaps + 1))
      echo "$overlaps" > "$SYNC/overlaps.tmp" && mv "$SYNC/overlaps.tmp" "$SYNC/overlaps"
    fi
  done
  echo "$torn" > "$SYNC/torn"
) &
reader=$!
i=0
while :; do
  i=$((i + 1))
  setseq $((2 * i - 1))
  "$DBFS" tx run --mount "$MNT" -- sh -c "for f in a b c d; do echo $i > $MNT/\$f; done" || die "tx $i failed"
  setseq $((2 * i))
  overlaps=$(cat "$SYNC/overlaps")
  if ((i >= 40 && overlaps >= MIN_OVERLAPS)) || ((i >= 400)); then break; fi
done
touch "$SYNC/stop-reader"
wait "$reader"
[ "$(cat "$SYNC/torn")" = 0 ] || die "reader saw a half-committed transaction $(cat "$SYNC/torn") times"
overlaps=$(cat "$SYNC/overlaps")
log "$i transactions, $overlaps reads overlapped one"
((overlaps >= MIN_OVERLAPS)) || die "only $overlaps reads overlapped a transaction in $i: the race did not run"
LAST=$i
[ "$(cat "$MNT/a")" = "$LAST" ] && [ "$(cat "$MNT/d")" = "$LAST" ] || die "last commit not visible"

log "2. rollback on failure leaves no trace"
"$DBFS" tx run --mount "$MNT" -- sh -c "echo junk > $MNT/junk; mkdir $MNT/jdir; echo changed > $MNT/a; rm $MNT/b; exit 7" && die "failing CMD reported success"
rc=$?
[ "$rc" = 7 ] || die "exit status $rc, expected the command's 7"
[ ! -e "$MNT/junk" ] && [ ! -e "$MNT/jdir" ] || die "rolled-back creations are visible"
[ "$(cat "$MNT/a")" = "$LAST" ] && [ -e "$MNT/b" ] || die "rolled-back changes are visible"

log "3. isolation, including files and entries the kernel cached before the transaction"
echo old > "$MNT/cached"
cat "$MNT/cached" > /dev/null   # page cache + attributes of an outside reader
stat "$MNT/victim" >/dev/null 2>&1 || echo v > "$MNT/victim"
stat "$MNT/victim" > /dev/null  # dentry cached outside
"$DBFS" tx run --mount "$MNT" -- sh -c "
  echo new-content > $MNT/cached
  echo created > $MNT/fresh
  rm $MNT/victim
  mv $MNT/c $MNT/c-renamed
  # own writes are visible inside
  [ \"\$(cat $MNT/cached)\" = new-content ] || exit 41
  [ -e $MNT/fresh ] || exit 42
  [ ! -e $MNT/victim ] || exit 43
  ls $MNT | grep -qx c-renamed || exit 44
  ls $MNT | grep -qx victim && exit 45
  [ \"\$(stat -c %s $MNT/cached)\" = 12 ] || exit 46
  touch $SYNC/tx3-ready
  while [ ! -e $SYNC/tx3-go ]; do sleep 0.02; done
" &
txpid=$!
wait_file "$SYNC/tx3-ready"
[ "$(cat "$MNT/cached")" = old ] || die "outside reader sees uncommitted content"
[ "$(stat -c %s "$MNT/cached")" = 4 ] || die "outside stat sees uncommitted size"
[ ! -e "$MNT/fresh" ] || die "outside sees an uncommitted creation"
[ -e "$MNT/victim" ] || die "outside misses a file deleted by an open transaction"
[ -e "$MNT/c" ] && [ ! -e "$MNT/c-renamed" ] || die "outside sees an uncommitted rename"
ls "$MNT" | grep -qx fresh && die "readdir outside shows an uncommitted entry"
touch "$SYNC/tx3-go"
wait "$txpid" || die "transaction 3 failed inside (exit $?)"
[ "$(cat "$MNT/cached")" = new-content ] || die "committed content not visible right after commit"
[ -e "$MNT/fresh" ] && [ ! -e "$MNT/victim" ] && [ -e "$MNT/c-renamed" ] || die "committed namespace changes not visible"

log "4. write-write conflict: exactly one of two commits wins, the other exits 75"
echo base > "$MNT/ww"
run_ww() {
  local rc=0
  "$DBFS" tx run --mount "$MNT" -- sh -c "echo $1 > $MNT/ww; touch $SYNC/ww-$1; while [ ! -e $SYNC/ww-go-$1 ]; do sleep 0.02; done" \
    2> "$SYNC/ww-$1.err" || rc=$?
  echo "${rc:-0}" > "$SYNC/ww-$1.rc"
}
run_ww one &
p1=$!
run_ww two &
p2=$!
wait_file "$SYNC/ww-one"
wait_file "$SYNC/ww-two"
touch "$SYNC/ww-go-one"
wait "$p1"
touch "$SYNC/ww-go-two"
wait "$p2"
[ "$(cat "$SYNC/ww-one.rc")" = 0 ] || die "first committer did not win"
[ "$(cat "$SYNC/ww-two.rc")" = 75 ] || die "second committer exit $(cat "$SYNC/ww-two.rc"), expected 75"
grep -q "conflict on /ww" "$SYNC/ww-two.err" || die "conflict message does not name the path: $(cat "$SYNC/ww-two.err")"
[ "$(cat "$MNT/ww")" = one ] || die "loser's write is visible"

log "5. write skew: serializable aborts one, snapshot commits both"
skew() {  # $1 isolation, $2 name of the file to write
  local rc=0
  "$DBFS" tx run --mount "$MNT" --isolation "$1" -- sh -c "cat $MNT/x $MNT/y > /dev/null; echo $2 > $MNT/$2; touch $SYNC/skew-$1-$2; while [ ! -e $SYNC/skew-go-$1-$2 ]; do sleep 0.02; done" 2>/dev/null || rc=$?
  echo "$rc" > "$SYNC/skew-$1-$2.rc"
}
for iso in serializable snapshot; do
  echo 1 > "$MNT/x"
  echo 1 > "$MNT/y"
  skew "$iso" x &
  q1=$!
  skew "$iso" y &
  q2=$!
  wait_file "$SYNC/skew-$iso-x"
  wait_file "$SYNC/skew-$iso-y"
  touch "$SYNC/skew-go-$iso-x"
  wait "$q1"
  touch "$SYNC/skew-go-$iso-y"
  wait "$q2"
  rx=$(cat "$SYNC/skew-$iso-x.rc")
  ry=$(cat "$SYNC/skew-$iso-y.rc")
  if [ "$iso" = serializable ]; then
    [ "$rx" = 0 ] && [ "$ry" = 75 ] || die "serializable write skew: exits $rx/$ry, expected 0/75"
  else
    [ "$rx" = 0 ] && [ "$ry" = 0 ] || die "snapshot write skew: exits $rx/$ry, expected 0/0"
  fi
done

log "6. no lost updates: 32 concurrent read-increment-write transactions"
echo 0 > "$MNT/counter"
pids=()
for i in $(seq 1 32); do
  "$DBFS" tx run --mount "$MNT" --retries 1000 -- sh -c "n=\$(cat $MNT/counter); echo \$((n + 1)) > $MNT/counter" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "an increment transaction failed"; done
[ "$(cat "$MNT/counter")" = 32 ] || die "counter is $(cat "$MNT/counter"), expected 32"

log "6b. 200 concurrent transactions on disjoint files in one directory: zero aborts"
mkdir "$MNT/many"
pids=()
for i in $(seq 1 200); do
  "$DBFS" tx run --mount "$MNT" -- sh -c "echo $i > $MNT/many/f$i; cat $MNT/many/f$i > /dev/null" \
    2>> "$SYNC/many.err" &
  pids+=($!)
done
fails=0
for p in "${pids[@]}"; do wait "$p" || fails=$((fails + 1)); done
[ "$fails" = 0 ] || die "$fails of 200 disjoint transactions failed: $(head -3 "$SYNC/many.err")"
[ "$(ls "$MNT/many" | wc -l)" = 200 ] || die "expected 200 files after 200 commits"

log "6c. a hot file: losers exit 75, and the winners' effects are exactly what they wrote"
echo 0 > "$MNT/hot"
pids=()
for i in $(seq 1 40); do
  ( rc=0
    "$DBFS" tx run --mount "$MNT" -- sh -c "n=\$(cat $MNT/hot); echo \$((n + 1)) > $MNT/hot" 2>/dev/null || rc=$?
    echo "$rc" > "$SYNC/hot-$i.rc" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
ok=$(cat "$SYNC"/hot-*.rc | grep -cx 0 || true)
lost=$(cat "$SYNC"/hot-*.rc | grep -cx 75 || true)
[ $((ok + lost)) = 40 ] || die "hot-file transactions ended with other statuses: $(cat "$SYNC"/hot-*.rc | sort | uniq -c)"
[ "$(cat "$MNT/hot")" = "$ok" ] || die "hot counter $(cat "$MNT/hot") but $ok commits succeeded (an abort was not real, or an update was lost)"

log "6d. --lock: 16 concurrent increments of one counter wait for each other: zero conflicts"
echo 0 > "$MNT/lcounter"
# The first to get the counter holds its lock until the 15 others are all
# queued behind it (dbfs tx status shows them waiting), so they do contend.
cat > "$SYNC/inc.sh" <<INC
n=\$(cat "$MNT/lcounter")
if [ "\$n" = 0 ]; then
  for t in \$(seq 1 400); do
    [ "\$("$DBFS" tx status --mount "$MNT" | grep -c 'waiting for the lock')" -ge 15 ] && break
    sleep 0.05
  done
fi
echo \$((n + 1)) > "$MNT/lcounter"
INC
pids=()
for i in $(seq 1 16); do
  ( rc=0
    "$DBFS" tx run --mount "$MNT" --lock -- sh "$SYNC/inc.sh" 2> "$SYNC/lock-$i.err" || rc=$?
    echo "$rc" > "$SYNC/lock-$i.rc" ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
failed=$(cat "$SYNC"/lock-*.rc | grep -cvx 0 || true)
[ "$failed" = 0 ] || die "$failed of 16 --lock increments failed: $(cat "$SYNC"/lock-*.rc | sort | uniq -c | tr '\n' ' ') $(cat "$SYNC"/lock-*.err | head -3)"
[ "$(cat "$MNT/lcounter")" = 16 ] || die "--lock counter is $(cat "$MNT/lcounter"), expected 16"
waits=$("$DBFS" stats --mount "$MNT" | awk '$1 == "tx_lock_waits" { print $2 }')
[ "${waits:-0}" -ge 15 ] || die "expected at least 15 lock waits, dbfs stats shows ${waits:-none}"
[ -z "$("$DBFS" tx status --mount "$MNT")" ] || die "transactions left open: $("$DBFS" tx status --mount "$MNT")"

log "6e. --lock deadlock: exactly one of two exits 75 saying deadlock; with --retries both commit"
# dl.sh NAME FIRST SECOND ROUND: lock FIRST (by writing it), wait until the
# other holds its first file, then write SECOND (the other's first file).
cat > "$SYNC/dl.sh" <<DL
echo "\$1" > "$MNT/\$2"
touch "$SYNC/dl-\$4-\$1"
other=\$([ "\$1" = p ] && echo q || echo p)
for t in \$(seq 1 400); do [ -e "$SYNC/dl-\$4-\$other" ] && break; sleep 0.05; done
echo "\$1" > "$MNT/\$3"
DL
deadlock_pair() {  # $1 round, $2 retries
  echo 0 > "$MNT/da"
  echo 0 > "$MNT/db"
  ( rc=0; "$DBFS" tx run --mount "$MNT" --lock --retries "$2" -- sh "$SYNC/dl.sh" p da db "$1" \
      2> "$SYNC/dl-$1-p.err" || rc=$?; echo "$rc" > "$SYNC/dl-$1-p.rc" ) &
  local d1=$!
  ( rc=0; "$DBFS" tx run --mount "$MNT" --lock --retries "$2" -- sh "$SYNC/dl.sh" q db da "$1" \
      2> "$SYNC/dl-$1-q.err" || rc=$?; echo "$rc" > "$SYNC/dl-$1-q.rc" ) &
  local d2=$!
  wait "$d1"
  wait "$d2"
}
deadlock_pair 1 0
rp=$(cat "$SYNC/dl-1-p.rc")
rq=$(cat "$SYNC/dl-1-q.rc")
case "$rp/$rq" in
  0/75) winner=p loser=q ;;
  75/0) winner=q loser=p ;;
  *) die "deadlock: exits $rp/$rq, expected one 0 and one 75 ($(cat "$SYNC"/dl-1-*.err))" ;;
esac
grep -q "deadlock" "$SYNC/dl-1-$loser.err" || die "the victim's message does not say deadlock: $(cat "$SYNC/dl-1-$loser.err")"
[ "$(cat "$MNT/da")" = "$winner" ] && [ "$(cat "$MNT/db")" = "$winner" ] \
  || die "after the deadlock: da=$(cat "$MNT/da") db=$(cat "$MNT/db"), expected both $winner"
deadlock_pair 2 5
[ "$(cat "$SYNC/dl-2-p.rc")/$(cat "$SYNC/dl-2-q.rc")" = 0/0 ] \
  || die "with --retries: exits $(cat "$SYNC/dl-2-p.rc")/$(cat "$SYNC/dl-2-q.rc") ($(cat "$SYNC"/dl-2-*.err))"
[ "$(cat "$MNT/da")" = "$(cat "$MNT/db")" ] || die "with --retries: da and db differ"
deadlocks=$("$DBFS" stats --mount "$MNT" | awk '$1 == "tx_lock_deadlocks" { print $2 }')
[ "${deadlocks:-0}" -ge 2 ] || die "expected at least 2 deadlocks counted, dbfs stats shows ${deadlocks:-none}"

log "7. begin/commit/abort from a shell, and status"
out=$(bash -c "
  cd $MNT
  eval \"\$($DBFS tx begin)\"
  echo shell > $MNT/from-shell
  $DBFS tx status | grep -q \"pid \$\$ \" || exit 51
  [ -e $MNT/from-shell ] || exit 52
  $DBFS tx commit || exit 53
  eval \"\$($DBFS tx begin)\"
  echo gone > $MNT/aborted-shell
  $DBFS tx abort || exit 54
  echo done
") || die "shell transaction script failed ($?)"
[ "$out" = done ] || die "shell transaction output: $out"
[ -e "$MNT/from-shell" ] || die "shell commit not visible"
[ ! -e "$MNT/aborted-shell" ] || die "shell abort left a file"

log "7b. dbfs tx run --durable: the commit returns after a WAL sync that covers it"
stat_of() { "$DBFS" stats --mount "$MNT" | awk -v k="$1" '$1 == k { print $2 }'; }
for n in 1 2 3 4 5; do
  "$DBFS" tx run --mount "$MNT" --durable -- sh -c "echo durable$n > $MNT/durable" || die "durable tx $n failed"
  # The commit is in the log now: the log end read after it returned is at
  # or past it, and the durable end must already be there (nothing else
  # writes meanwhile).
  written=$(stat_of wal_written_lsn)
  synced=$(stat_of wal_synced_lsn)
  [ -n "$written" ] && [ -n "$synced" ] || die "dbfs stats lacks wal_written_lsn/wal_synced_lsn"
  ((synced >= written)) || die "--durable commit $n returned with wal_synced_lsn $synced < wal_written_lsn $written"
done
# Contrast: without --durable the commit does not wait for a sync (the
# background flush syncs later), so the check above is not vacuous.
lagged=0
for n in $(seq 1 20); do
  "$DBFS" tx run --mount "$MNT" -- sh -c "echo lazy$n > $MNT/lazy" || die "tx $n failed"
  (($(stat_of wal_synced_lsn) < $(stat_of wal_written_lsn))) && lagged=$((lagged + 1))
done
((lagged > 0)) || die "20 commits without --durable all found the WAL synced: the --durable check shows nothing"

log "7c. -o tx_max_bytes: a transaction that writes more is aborted, and nothing of it stays"
dbfs_unmount
DBFS_MOUNT_OPTS="allow_other,tx_max_bytes=1m"
dbfs_mount
"$DBFS" tx run --mount "$MNT" -- sh -c "head -c 512k /dev/zero > $MNT/small-tx" || die "a 512 KiB transaction failed under tx_max_bytes=1m"
[ "$(stat -c %s "$MNT/small-tx")" = 524288 ] || die "the 512 KiB transaction's file is wrong"
rc=0
"$DBFS" tx run --mount "$MNT" -- sh -c "echo first > $MNT/big-tx-a; head -c 3m /dev/zero > $MNT/big-tx-b" >"$T/big.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || die "a 3 MiB transaction under tx_max_bytes=1m succeeded"
[ ! -e "$MNT/big-tx-a" ] && [ ! -e "$MNT/big-tx-b" ] || die "the aborted big transaction left files"
aborts=$(stat_of tx_aborts)
((aborts >= 1)) || die "dbfs stats shows no aborted transaction"
dbfs_unmount
unset DBFS_MOUNT_OPTS
dbfs_mount

log "8. a daemon crash with an open transaction: none of it survives"
"$DBFS" tx run --mount "$MNT" -- sh -c "echo doomed > $MNT/doomed; echo changed > $MNT/a; touch $SYNC/crash-ready; while [ ! -e $SYNC/crash-end ]; do sleep 0.05; done" &
crashpid=$!
wait_file "$SYNC/crash-ready"
kill -9 "$DAEMON_PID"
touch "$SYNC/crash-end"
wait "$crashpid" 2>/dev/null || true
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
wait_until 10 pid_gone "$DAEMON_PID" || true
DAEMON_PID=""
cd /
dbfs_mount
[ ! -e "$MNT/doomed" ] || die "an uncommitted creation survived the crash"
[ "$(cat "$MNT/a")" = "$LAST" ] || die "an uncommitted change survived the crash"
cd /
dbfs_unmount
fsck_clean
dbfs_pass
