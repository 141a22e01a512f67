#!/bin/bash
# Mid-log WAL corruption through the real tools (issue 4, "Recovery"): a
# record with a bad CRC followed by records that were made durable after it
# is not a torn tail. dbfs-mount must refuse the volume with a message that
# points to fsck.dbfs, leave the log untouched (no silent truncation), and
# fsck.dbfs -n must report it. A torn tail (damage that no later record
# vouches for) is the contrast: that volume mounts.
#
# The damage has to lie in the part of the log that recovery reads (past the
# applied LSN), so the test stages the crash "before the flusher ever ran":
# LMDB as it was before the workload, the WAL holding every commit since. It
# first checks that this staged volume recovers fine, then damages it.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs the DBFS tools"
require fusermount3 cmp od
dbfs_setup

BIN=$DBFS_BIN_DIR
SEG=$VOL/wal/00000001.wal
dbfs_unmount
cp -a "$VOL/meta" "$T/meta.before"  # LMDB before the workload

# ---- workload: 40 files, each written and fsynced (every later record vouches
# for everything before it) ----
dbfs_mount
mkdir "$MNT/d"
for i in $(seq 1 40); do
  head -c $((3000 + i * 100)) /dev/urandom >"$T/f$i"
  dd if="$T/f$i" of="$MNT/d/f$i" bs=64k conv=fsync status=none || die "write f$i"
done
log "crash: SIGKILL dbfs-mount $DAEMON_PID"
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
is_mounted "$MNT" && die "dead mount not cleared"

# The staged crash image: LMDB from before the workload, the whole WAL.
rm -rf "$VOL/meta"
cp -a "$T/meta.before" "$VOL/meta"
cp -a "$VOL" "$T/image"
restore_image() {
  rm -rf "$VOL"
  cp -a "$T/image" "$VOL"
}

# ---- control: the staged volume recovers every file ----
: >"$T/mount.out"
dbfs_mount
grep -q "recovery: replayed" "$LOG" || die "recovery replayed nothing (the damage would not be read)"
for i in $(seq 1 40); do
  cmp -s "$T/f$i" "$MNT/d/f$i" || die "control: f$i differs after recovery"
done
dbfs_unmount
log "control: the staged crash image recovers all 40 files"

# mount_refused WHAT: dbfs-mount -f must exit non-zero without mounting, and
# say why, naming fsck.dbfs.
mount_refused() {
  local rc=0
  timeout 60 "$BIN/dbfs-mount" "$VOL" "$MNT" -f >"$T/mount.out" 2>&1 || rc=$?
  cat "$T/mount.out" >>"$LOG"
  if is_mounted "$MNT"; then
    fusermount3 -u "$MNT" || umount -l "$MNT"
    die "dbfs-mount mounted $1"
  fi
  [ "$rc" != 0 ] || die "dbfs-mount exited 0 on $1"
  [ "$rc" != 124 ] || die "dbfs-mount hung on $1"
  grep -q "fsck.dbfs" "$T/mount.out" || die "dbfs-mount refused $1 without pointing to fsck.dbfs: $(cat "$T/mount.out")"
  log "refused $1 (exit $rc): $(grep -m1 fsck.dbfs "$T/mount.out")"
}

# flip_byte FILE OFFSET
flip_byte() {
  local b
  b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
  printf "$(printf '\\%03o' $((b ^ 0x5a)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ---- mid-log corruption: one byte in a record a third into the log ----
restore_image
size=$(stat -c %s "$SEG")
[ "$size" -gt 100000 ] || die "the log is only $size bytes"
off=$((size / 3))
flip_byte "$SEG" "$off"
cp "$SEG" "$T/damaged.wal"
mount_refused "a WAL with a bad record at offset $off followed by durable records"
grep -qi "corrupt" "$T/mount.out" || die "the message does not say the WAL is corrupt"
grep -q "00000001.wal" "$T/mount.out" || die "the message does not name the segment"
cmp -s "$SEG" "$T/damaged.wal" || die "the refused mount changed the WAL (truncated it?)"
[ "$(stat -c %s "$SEG")" = "$size" ] || die "the refused mount changed the WAL's size"
# The daemonized mount (no -f) refuses the same way.
rc=0
timeout 60 "$BIN/dbfs-mount" "$VOL" "$MNT" >"$T/mount.out" 2>&1 || rc=$?
is_mounted "$MNT" && { fusermount3 -u "$MNT"; die "daemonized dbfs-mount mounted the damaged volume"; }
[ "$rc" != 0 ] && grep -q "fsck.dbfs" "$T/mount.out" || die "daemonized dbfs-mount: exit $rc, $(cat "$T/mount.out")"
# fsck -n finds it too and writes nothing.
rc=0
"$BIN/fsck.dbfs" -n "$VOL" >"$T/fsck.out" 2>&1 || rc=$?
cat "$T/fsck.out" >>"$LOG"
[ "$rc" != 0 ] || die "fsck.dbfs -n found nothing wrong in the damaged WAL"
grep -qi "wal" "$T/fsck.out" || die "fsck.dbfs -n does not mention the WAL: $(cat "$T/fsck.out")"
cmp -s "$SEG" "$T/damaged.wal" || die "fsck.dbfs -n changed the WAL"
log "fsck.dbfs -n: exit $rc"

# ---- contrast: a torn tail (the last record cut short) mounts ----
restore_image
truncate -s $(($(stat -c %s "$SEG") - 7)) "$SEG"
dbfs_mount
for i in $(seq 1 39); do
  cmp -s "$T/f$i" "$MNT/d/f$i" || die "torn tail: f$i differs"
done
dbfs_unmount
fsck_clean
dbfs_pass
