#!/usr/bin/env bash
# History through the kernel (issue 14): snapshots under concurrent writers,
# EROFS under .dbfs, time travel and diff against a model of a random
# workload, restore/rollback/revert as transactions (conflict: exit 75,
# nothing done), tx run --keep review, log attribution, snapshots across
# unmount and SIGKILL, retention expiry giving the space back.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "history needs a DBFS mount"
DBFS_MOUNT_OPTS="allow_other,history=1h"
dbfs_setup
DBFS=$DBFS_BIN_DIR/dbfs
SYNC=$T/sync
mkdir -p "$SYNC"
cd /

# manifest DIR: "path type md5" of everything under DIR (not .dbfs), sorted.
manifest() {
  (cd "$1" && find . -path ./.dbfs -prune -o -printf '%p %y\n' | LC_ALL=C sort | while read -r p y; do
    if [ "$y" = f ]; then echo "$p f $(md5sum <"$p" | cut -c1-32)"; else echo "$p $y"; fi
  done)
}
now_ns() { date +%s%N; }
at_point() { echo "@$(($1 / 1000000000)).$(printf %09d $(($1 % 1000000000)))"; }

log "1. a snapshot under concurrent writers is a consistent cut of them"
for w in 1 2 3; do printf '%08d' 0 >"$MNT/a$w"; printf '%08d' 0 >"$MNT/b$w"; done
for w in 1 2 3; do
  (
    set +e
    for i in $(seq 1 25); do
      echo "$i" >"$SYNC/started$w.tmp" && mv "$SYNC/started$w.tmp" "$SYNC/started$w"
      "$DBFS" tx run --mount "$MNT" -- sh -c "printf '%08d' $i | dd of=$MNT/a$w conv=notrunc status=none; printf '%08d' $i | dd of=$MNT/b$w conv=notrunc status=none" || exit 1
      echo "$i" >"$SYNC/done$w.tmp" && mv "$SYNC/done$w.tmp" "$SYNC/done$w"
    done
  ) &
  eval "writer$w=$!"
done
# A failing check must not leave writers keeping the mount busy.
trap 'kill $writer1 $writer2 $writer3 2>/dev/null; dbfs_cleanup' EXIT
for s in 1 2 3; do
  wait_until 20 test -e "$SYNC/done1" || die "writers did not start"
  for w in 1 2 3; do eval "lo$w=\$(cat $SYNC/done$w 2>/dev/null || echo 0)"; done
  "$DBFS" snapshot create "cut$s" --mount "$MNT" >/dev/null || die "snapshot create failed"
  for w in 1 2 3; do eval "hi$w=\$(cat $SYNC/started$w)"; done
  for w in 1 2 3; do
    a=$((10#$(cat "$MNT/.dbfs/snapshots/cut$s/a$w"))); b=$((10#$(cat "$MNT/.dbfs/snapshots/cut$s/b$w")))
    eval "lo=\$lo$w hi=\$hi$w"
    [ "$a" = "$b" ] || die "snapshot cut$s shows half of a transaction of writer $w (a=$a b=$b)"
    [ "$a" -ge "$lo" ] && [ "$a" -le "$hi" ] || die "snapshot cut$s: writer $w at $a, outside [$lo, $hi]"
  done
done
for w in 1 2 3; do eval "wait \$writer$w" || die "writer $w failed"; done
trap dbfs_cleanup EXIT
# The snapshot stays what it was while the volume moves on.
[ "$(cat "$MNT/a1")" = 00000025 ] || die "writer 1 did not finish"
manifest "$MNT/.dbfs/snapshots/cut1" >"$T/cut1.before"

log "2. every write under .dbfs fails with EROFS"
S=$MNT/.dbfs/snapshots/cut1
erofs() { local out; out=$("$@" 2>&1) && die "allowed under .dbfs: $*"; echo "$out" | grep -q "Read-only file system" || die "not EROFS: $* ($out)"; }
erofs sh -c "echo x > $S/new"
erofs sh -c "echo x >> $S/a1"
erofs mkdir "$S/dir"
erofs rm "$S/a1"
erofs mv "$S/a1" "$S/a9"
erofs mv "$MNT/a1" "$S/a9"
erofs chmod 600 "$S/a1"
erofs touch "$S/a1"
erofs truncate -s 0 "$S/a1"
erofs ln "$S/a1" "$S/l"
erofs ln -s x "$S/sl"
erofs setfattr -n user.x -v 1 "$S/a1"
erofs rmdir "$MNT/.dbfs/snapshots/cut1"
erofs mkdir "$MNT/.dbfs/x"
erofs rm -rf "$MNT/.dbfs"
ls -a "$MNT" | grep -qx .dbfs && die ".dbfs is listed by readdir of the root"
[ -d "$MNT/.dbfs/snapshots" ] || die ".dbfs lookup failed"

log "3. time travel and diff equal a model of a random workload"
mkdir "$MNT/w"
seed=${HISTORY_SEED:-$$}
RANDOM=$seed
log "seed $seed (HISTORY_SEED= reproduces the operations)"
points=()
for i in $(seq 0 29); do
  f="$MNT/w/f$((RANDOM % 6))"
  case $((RANDOM % 6)) in
    0 | 1) head -c $((RANDOM % 5000 + 1)) /dev/urandom >"$f" ;;
    2) if [ -e "$f" ]; then printf 'tail%d' "$i" >>"$f"; fi ;;
    3) rm -f "$f" ;;
    4) g="$MNT/w/f$((RANDOM % 6))"; if [ -e "$f" ] && [ "$f" != "$g" ]; then mv "$f" "$g"; fi ;;
    5) d="$MNT/w/d$((RANDOM % 2))"; mkdir -p "$d"; echo "$i" >"$d/g$i" ;;
  esac
  t=$(now_ns)
  points+=("$t")
  manifest "$MNT/w" >"$T/model.$i"
done
for i in $(seq 0 29); do
  p=$(at_point "${points[$i]}")
  manifest "$MNT/.dbfs/at/$p/w" >"$T/seen.$i" || die "at/$p unreadable"
  diff -u "$T/model.$i" "$T/seen.$i" >&2 || die "time travel to point $i ($p) differs from the model"
done
# The diff of two points equals the model's (renames as - and +; no
# directory modifications in the model).
model_diff() {
  join -a1 -a2 -e NONE -o 0,1.3,2.3 <(awk '$2 != "d" || 1 {print $1, $2, ($3 == "" ? "dir" : $3)}' "$1" | sort) \
    <(awk '{print $1, $2, ($3 == "" ? "dir" : $3)}' "$2" | sort) |
    awk '$2 == "NONE" {print "+", $1; next} $3 == "NONE" {print "-", $1; next} $2 != $3 {print "M", $1}' | LC_ALL=C sort
}
for pair in "0 29" "5 17" "12 13" "3 26"; do
  set -- $pair
  model_diff "$T/model.$1" "$T/model.$2" | sed 's|\./|/w/|' | LC_ALL=C sort >"$T/mdiff"
  "$DBFS" diff "$(at_point "${points[$1]}")" "$(at_point "${points[$2]}")" --mount "$MNT" |
    awk -F'\t' '$1 == "R" {split($2, p, " -> "); print "-", p[1]; print "+", p[2]; next} {print $1, $2}' |
    sed 's|/$||' | { grep -v ' /w$' || true; } |
    awk '{k[$2] = k[$2] $1}
         END {for (p in k) { s = k[p]
           if (index(s, "-") && index(s, "+")) print "M", p   # replaced at that path
           else if (index(s, "+")) print "+", p
           else if (index(s, "-")) print "-", p
           else print "M", p }}' |
    LC_ALL=C sort >"$T/ddiff"
  diff -u "$T/mdiff" "$T/ddiff" >&2 || die "dbfs diff between points $1 and $2 differs from the model"
done

log "4. restore, rollback and revert are transactions"
mkdir -p "$MNT/proj/src"
for i in 1 2 3; do echo "v1 $i" >"$MNT/proj/src/m$i.c"; done
"$DBFS" snapshot create good --mount "$MNT" >/dev/null
rm -rf "$MNT/proj/src"; echo broken >"$MNT/proj/README"
"$DBFS" diff good now "$MNT/proj" | grep -q "^-	/proj/src/m1.c" || die "diff misses the removal"
"$DBFS" restore "$MNT/proj" --at good >/dev/null || die "restore failed"
[ "$(cat "$MNT/proj/src/m2.c")" = "v1 2" ] && [ ! -e "$MNT/proj/README" ] || die "restore did not restore"
# A conflicting writer between the restore's snapshot and its commit: 75, nothing done.
echo v2 >"$MNT/proj/src/m1.c"; rm "$MNT/proj/src/m3.c"
id=$("$DBFS" restore "$MNT/proj" --at good --keep) || die "restore --keep failed"
"$DBFS" tx diff "$id" --mount "$MNT" | grep -q "/proj/src/m3.c" || die "tx diff does not show the restore"
echo concurrent >"$MNT/proj/src/m1.c"
rc=0; "$DBFS" tx commit "$id" --mount "$MNT" 2>/dev/null || rc=$?
[ "$rc" = 75 ] || die "conflicting restore exited $rc, not 75"
[ "$(cat "$MNT/proj/src/m1.c")" = concurrent ] && [ ! -e "$MNT/proj/src/m3.c" ] || die "a conflicting restore changed something"
# Rollback of the whole volume; the history in between stays browsable.
before_rb=$("$DBFS" stats --mount "$MNT" | awk '$1 == "visible_csn" {print $2}')
"$DBFS" rollback good --mount "$MNT" >/dev/null || die "rollback failed"
[ "$(cat "$MNT/proj/src/m1.c")" = "v1 1" ] && [ -e "$MNT/proj/src/m3.c" ] || die "rollback incomplete"
manifest "$MNT/.dbfs/snapshots/good" | diff -u - <(manifest "$MNT") >&2 || die "rollback: volume differs from the snapshot"
[ "$(cat "$MNT/.dbfs/at/$before_rb/proj/src/m1.c")" = concurrent ] || die "state before the rollback is gone"
# Revert one commit; a later change to the same file makes it a conflict.
echo one >"$MNT/rv"; echo two >>"$MNT/rv"
c=$("$DBFS" log "$MNT/rv" --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["csn"])')
"$DBFS" revert "$c" --mount "$MNT" >/dev/null || die "revert failed"
[ "$(cat "$MNT/rv")" = one ] || die "revert did not undo the append"
echo three >>"$MNT/rv"
c=$("$DBFS" log "$MNT/rv" --limit 2 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[1]["csn"])')
rc=0; "$DBFS" revert "$c" --mount "$MNT" 2>"$T/rv.err" || rc=$?
[ "$rc" = 75 ] && grep -q "/rv" "$T/rv.err" || die "revert of an overwritten commit: rc $rc, $(cat "$T/rv.err")"
[ "$(cat "$MNT/rv")" = "one
three" ] || die "a refused revert changed the file"
# rm, then revert brings the file back with its data.
head -c 100000 /dev/urandom >"$MNT/victim"; sum=$(md5sum <"$MNT/victim")
rm "$MNT/victim"
c=$("$DBFS" log "$MNT/victim" --limit 1 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["csn"])')
"$DBFS" revert "$c" --mount "$MNT" >/dev/null || die "revert of rm failed"
[ "$(md5sum <"$MNT/victim")" = "$sum" ] || die "reverted rm lost the data"

log "5. tx run --keep: review, then commit or abort"
id=$("$DBFS" tx run --keep --mount "$MNT" -- sh -c "echo reviewed > $MNT/kept; rm $MNT/rv") || die "tx run --keep failed"
[ ! -e "$MNT/kept" ] || die "a kept transaction is visible before commit"
"$DBFS" tx diff "$id" --mount "$MNT" >"$T/txdiff"
grep -q "^+	/kept" "$T/txdiff" && grep -q "^-	/rv" "$T/txdiff" || die "tx diff: $(cat "$T/txdiff")"
"$DBFS" tx commit "$id" --mount "$MNT" || die "commit of the kept transaction failed"
[ "$(cat "$MNT/kept")" = reviewed ] && [ ! -e "$MNT/rv" ] || die "kept transaction not committed"
id=$("$DBFS" tx run --keep --mount "$MNT" -- sh -c "echo no > $MNT/dropped") || die "tx run --keep failed"
"$DBFS" tx abort "$id" --mount "$MNT" || die "abort failed"
[ ! -e "$MNT/dropped" ] || die "aborted kept transaction is visible"

log "6. the log names uid, pid and command, and the transaction"
sh -c 'echo $$ > '"$SYNC"'/ddpid; exec dd if=/dev/zero of='"$MNT"'/bydd bs=1k count=1 status=none'
"$DBFS" log "$MNT/bydd" --json >"$T/log.json"
python3 - "$T/log.json" "$(cat "$SYNC/ddpid")" <<'EOF' || die "log attribution of dd wrong: $(cat "$T/log.json")"
import json, sys
e = json.load(open(sys.argv[1]))
assert any(c["pid"] == int(sys.argv[2]) and c["comm"] == "dd" and c["uid"] == 0 for c in e), e
EOF
setpriv --reuid 65534 --regid 65534 --clear-groups sh -c "echo x > $MNT/nobody_file" 2>/dev/null || chmod 1777 "$MNT" && setpriv --reuid 65534 --regid 65534 --clear-groups sh -c "echo x > $MNT/nobody_file"
"$DBFS" log "$MNT/nobody_file" --json | python3 -c 'import json,sys; e=json.load(sys.stdin); assert e[-1]["uid"] == 65534, e' || die "log uid wrong"
"$DBFS" tx run --mount "$MNT" -- sh -c "echo t > $MNT/bytx" || die "tx run failed"
"$DBFS" log "$MNT/bytx" --json | python3 -c '
import json,sys; e=json.load(sys.stdin)[0]
assert e["tx"] > 0 and "sh -c" in e["tx_cmd"] and "bytx" in e["tx_cmd"], e' || die "log does not name the transaction"

log "6b. other users see only what they could reach: log and diff hide private paths"
nobody() { setpriv --reuid 65534 --regid 65534 --clear-groups env HOME=/ "$@"; }
echo m >"$MNT/moved-away"
before_private=$(now_ns)
mkdir -m 700 "$MNT/private"
echo s >"$MNT/private/secret-name"
echo p >"$MNT/public-name"
mv "$MNT/moved-away" "$MNT/private/moved-in"
nobody "$DBFS" log --mount "$MNT" --limit 50 >"$T/nlog" || die "log as another user failed"
nobody "$DBFS" diff "$(at_point "$before_private")" now --mount "$MNT" >"$T/ndiff" || die "diff as another user failed"
"$DBFS" diff "$(at_point "$before_private")" now --mount "$MNT" >"$T/rdiff" || die "diff as root failed"
# Root sees everything; the negative control shows the names are there to hide.
grep -q secret-name "$T/rdiff" && grep -q moved-in "$T/rdiff" || die "root's diff misses the private names: $(cat "$T/rdiff")"
! grep -qE 'secret-name|moved-in' "$T/nlog" "$T/ndiff" || die "another user sees private names: $(cat "$T/nlog" "$T/ndiff")"
grep -q public-name "$T/nlog" && grep -q public-name "$T/ndiff" || die "another user misses a public change: $(cat "$T/ndiff")"
# The rename into the private directory shows as the public name's removal.
grep -qE '^-[[:space:]]+/moved-away' "$T/ndiff" || die "a rename out of sight is not a removal for another user: $(cat "$T/ndiff")"

log "7. snapshots survive unmount and SIGKILL"
dbfs_remount
manifest "$MNT/.dbfs/snapshots/cut1" | diff -u "$T/cut1.before" - >&2 || die "snapshot changed across a remount"
"$DBFS" snapshot create afterkill --mount "$MNT" >/dev/null
echo gone-later >"$MNT/kept"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=""
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
fsck_clean
dbfs_mount
[ "$(cat "$MNT/.dbfs/snapshots/afterkill/kept")" = reviewed ] || die "snapshot lost by SIGKILL"
manifest "$MNT/.dbfs/snapshots/cut1" | diff -u "$T/cut1.before" - >&2 || die "snapshot changed across SIGKILL"
"$DBFS" snapshot list --mount "$MNT" | grep -q "^cut2 " || die "snapshot list misses cut2"

log "8. retention expiry gives the space back"
# A window long enough that a slow machine cannot let it expire before the
# measurement; then a remount with a 2 s window must let the old bytes go.
dbfs_unmount
DBFS_MOUNT_OPTS="allow_other,history=1h,checkpoint_interval=0,wal_segment_mb=1"
dbfs_mount
for s in cut1 cut2 cut3 good afterkill; do "$DBFS" snapshot delete "$s" --mount "$MNT"; done
head -c 8M /dev/urandom >"$MNT/big"
head -c 8M /dev/urandom >"$MNT/big"   # the first 8 MiB are history now
"$DBFS" checkpoint --mount "$MNT" >/dev/null
held=$("$DBFS" checkpoint --mount "$MNT" | awk '$1 == "history_bytes" {print $2}')
[ "$held" -ge 8000000 ] || die "history holds $held bytes, expected the overwritten 8 MiB"
wal_bytes() { du -sb "$VOL/wal" | cut -f1; }
big=$(wal_bytes)
dbfs_unmount
DBFS_MOUNT_OPTS="allow_other,history=2s,checkpoint_interval=0,wal_segment_mb=1"
dbfs_mount
shrunk() { "$DBFS" checkpoint --mount "$MNT" >/dev/null; [ "$(wal_bytes)" -lt $((big - 6000000)) ]; }
wait_until 30 shrunk || die "WAL still $(wal_bytes) bytes after the window expired (was $big)"
"$DBFS" stats --mount "$MNT" | grep -q "^history_window_seconds 2$" || die "stats miss the window"
dbfs_unmount
fsck_clean
dbfs_pass
