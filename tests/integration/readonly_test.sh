#!/usr/bin/env bash
# Read-only mounts (issue 12 item 8): -o ro writes nothing to the volume —
# the volume directory's checksum is the same before and after (WAL, LMDB,
# lock file, orphans, atime), also for a volume with a log tail left by a
# killed daemon (replayed in memory only) — every change fails with EROFS,
# and fsck of it is clean. `mount -o remount,ro|rw` through the helper
# switches the kernel mount. Before the fix, `ro` was an unknown option.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require python3 mount

# Every file of the volume: name, size, mtime and content hash.
volume_sum() {
  (cd "$VOL" && find . -printf '%p %y %s %T@\n' | LC_ALL=C sort &&
    find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum) | sha256sum
}
expect_erofs() {
  local what=$1
  shift
  local out
  if out=$("$@" 2>&1); then die "$what succeeded on a read-only mount"; fi
  case "$out" in *"Read-only file system"*) ;; *) die "$what: expected EROFS, got: $out" ;; esac
}

dbfs_setup
mkdir "$MNT/d"
echo content >"$MNT/d/f"
setfattr -n user.k -v v "$MNT/d/f" 2>/dev/null || true
exec 7<"$MNT/d/f"  # an orphan once unlinked: reclaimed only by a read-write mount
rm "$MNT/d/f"
echo other >"$MNT/d/g"
exec 7<&-
# Leave a log tail to replay: kill the daemon after durable writes.
head -c 300000 /dev/urandom >"$MNT/d/tail"
sync "$MNT/d/tail"
tailsum=$(md5sum <"$MNT/d/tail")
kill -9 "$DAEMON_PID"
wait "$DAEMON_PID" 2>/dev/null || true
DAEMON_PID=""
fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
before=$(volume_sum)

log "1. -o ro: everything readable, every change EROFS"
DBFS_MOUNT_OPTS="allow_other,ro"
dbfs_mount
grep -q " $MNT fuse.dbfs ro," /proc/mounts || die "not mounted ro: $(grep " $MNT " /proc/mounts)"
[ "$(cat "$MNT/d/g")" = other ] || die "content lost"
[ "$(md5sum <"$MNT/d/tail")" = "$tailsum" ] || die "the replayed tail reads differently"
ls -la "$MNT/d" >/dev/null
expect_erofs "create" bash -c "echo x >'$MNT/new'"
expect_erofs "append" bash -c "echo x >>'$MNT/d/g'"
expect_erofs "mkdir" mkdir "$MNT/nd"
expect_erofs "unlink" rm "$MNT/d/g"
expect_erofs "rename" mv "$MNT/d/g" "$MNT/d/h"
expect_erofs "truncate" truncate -s 0 "$MNT/d/g"
expect_erofs "chmod" chmod 600 "$MNT/d/g"
expect_erofs "touch" touch "$MNT/d/g"
expect_erofs "dbfs tx" "$DBFS_BIN_DIR/dbfs" tx run --mount "$MNT" -- true
# Reads long enough for the flusher and a relatime atime update to have run.
for i in 1 2 3 4 5; do cat "$MNT/d/g" "$MNT/d/tail" >/dev/null; sleep 0.1; done
dbfs_unmount
[ "$(volume_sum)" = "$before" ] || die "a read-only mount changed the volume"

log "2. fsck of the volume after the read-only mount"
# A read-write mount replays the tail and reclaims the orphan; then fsck -n.
DBFS_MOUNT_OPTS="allow_other"
dbfs_mount
dbfs_unmount
fsck_clean
before=$(volume_sum)
DBFS_MOUNT_OPTS="allow_other,ro"
dbfs_mount
cat "$MNT/d/g" >/dev/null
dbfs_unmount
[ "$(volume_sum)" = "$before" ] || die "a read-only mount of a clean volume changed it"
fsck_clean

log "3. mount -o remount,ro / remount,rw through the helper"
helper=/sbin/mount.fuse.dbfs
installed=0
if [ ! -e "$helper" ]; then
  ln -s "$DBFS_BIN_DIR/dbfs-mount" "$helper"
  installed=1
fi
trap '[ "$installed" = 1 ] && rm -f "$helper"; dbfs_cleanup' EXIT
DBFS_MOUNT_OPTS="allow_other"
dbfs_mount
mount -o remount,ro "$MNT" || die "mount -o remount,ro failed"
grep -q " $MNT fuse.dbfs ro," /proc/mounts || die "remount,ro did not apply"
expect_erofs "write after remount,ro" bash -c "echo x >'$MNT/after'"
mount -o remount,rw "$MNT" || die "mount -o remount,rw failed"
echo x >"$MNT/after" || die "write after remount,rw failed"
dbfs_unmount
fsck_clean
dbfs_pass
