#!/usr/bin/env bash
# -o log=: a background daemon logs to file:PATH instead of a file inside
# the volume, and -o log=stderr keeps the volume clean too; bad values are
# refused with a clear error. (log=syslog goes through syslog(3) to
# /dev/log: checked only when this machine has a syslog socket.)
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
MOUNT_BIN=$DBFS_BIN_DIR/dbfs-mount
T=$(mktemp -d /tmp/dbfs-log.XXXXXX)
VOL=$T/volume
MNT=$T/mnt
mkdir -p "$MNT"
cleanup_log() {
  if is_mounted "$MNT"; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  rm -rf "$T"
}
trap cleanup_log EXIT
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL"

# mount_bg OPTIONS: background mount (the daemon detaches); then unmount and
# wait until the daemon has released the volume (its lock).
mount_cycle() {
  "$MOUNT_BIN" "$VOL" "$MNT" -o "$1" || die "dbfs-mount -o $1 failed"
  is_mounted "$MNT" || die "not mounted"
  echo data >"$MNT/f"
  fusermount3 -u "$MNT" || die "unmount failed"
  wait_until 60 flock -n "$VOL/lock" true || die "the daemon did not release the volume"
}

mount_cycle "log=file:$T/daemon.log"
grep -q "opening $VOL" "$T/daemon.log" || die "no opening line in the file: $(cat "$T/daemon.log")"
grep -q "closed $VOL cleanly" "$T/daemon.log" || die "no clean close in the file"
[ ! -e "$VOL/dbfs.log" ] || die "log=file: still wrote VOLUME/dbfs.log"

mount_cycle "log=stderr"
[ ! -e "$VOL/dbfs.log" ] || die "log=stderr wrote VOLUME/dbfs.log"

# The default in the background is still VOLUME/dbfs.log.
mount_cycle "noatime"
grep -q "closed $VOL cleanly" "$VOL/dbfs.log" || die "default log file missing"
rm -f "$VOL/dbfs.log"

if [ -S /dev/log ]; then
  mount_cycle "log=syslog"
  [ ! -e "$VOL/dbfs.log" ] || die "log=syslog wrote VOLUME/dbfs.log"
fi

for bad in "log=" "log=file:relative" "log=journal" "log=file:"; do
  if out=$("$MOUNT_BIN" "$VOL" "$MNT" -o "$bad" 2>&1); then
    die "-o $bad was accepted"
  fi
  [[ $out == *"mount option log"* ]] || [[ $out == *"unknown mount option"* ]] ||
    die "-o $bad: unclear error: $out"
  is_mounted "$MNT" && die "-o $bad mounted"
done
log "PASS"
