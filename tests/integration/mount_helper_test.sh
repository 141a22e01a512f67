#!/usr/bin/env bash
# mount -t fuse.dbfs (and so fstab) through the /sbin/mount.fuse.dbfs helper:
# mount(8) runs "mount.fuse.dbfs VOLUME MOUNTPOINT -o OPTIONS".
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require mount
helper=/sbin/mount.fuse.dbfs
installed=0
if [ ! -e "$helper" ]; then
  ln -s "$DBFS_BIN_DIR/dbfs-mount" "$helper"
  installed=1
fi
T=$(mktemp -d /tmp/dbfs-mh.XXXXXX)
VOL=$T/volume
MNT=$T/mnt
mkdir -p "$MNT"
cleanup_helper() {
  if is_mounted "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  [ "$installed" = 1 ] && rm -f "$helper"
  rm -rf "$T"
}
trap cleanup_helper EXIT
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL"
mount -t fuse.dbfs "$VOL" "$MNT" -o noatime,nodev,nosuid || die "mount -t fuse.dbfs failed"
is_mounted "$MNT" || die "not in /proc/mounts after mount returned"
grep -q " $MNT fuse.dbfs .*noatime" /proc/mounts || die "options not applied: $(grep " $MNT " /proc/mounts)"
echo hello > "$MNT/x"
[ "$(cat "$MNT/x")" = hello ] || die "mount does not work"
umount "$MNT" || die "umount failed"
wait_until 10 bash -c "! grep -qs ' $MNT ' /proc/mounts" || die "still mounted"
# The volume is released once the daemon has flushed: a remount works at once.
mount -t fuse.dbfs "$VOL" "$MNT" || die "remount failed"
[ "$(cat "$MNT/x")" = hello ] || die "data lost across umount/mount"
umount "$MNT"
log "PASS"
