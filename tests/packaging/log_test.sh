#!/usr/bin/env bash
# -o log=: a background daemon logs to file:PATH instead of a file inside
# the volume, and -o log=stderr keeps the volume clean too; bad values are
# refused with a clear error; log=syslog reaches a syslog socket.
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

# log=syslog: syslog(3) writes to /dev/log, so the daemon runs in a private
# mount namespace whose /dev (a tmpfs with null and fuse) holds our own
# /dev/log listener; the messages must arrive there, tagged dbfs-mount[PID].
if command -v unshare >/dev/null 2>&1 && unshare -m true 2>/dev/null; then
  mkdir -p "$T/dev"
  DBFS_T=$T DBFS_VOL=$VOL DBFS_MNT=$MNT DBFS_MOUNT_BIN=$MOUNT_BIN \
    unshare -m --propagation private bash -c '
    set -eu
    T=$DBFS_T
    mount -t tmpfs none "$T/dev"
    mknod -m 666 "$T/dev/null" c 1 3
    mknod -m 666 "$T/dev/fuse" c 10 229
    python3 -c "
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
open(sys.argv[2], \"w\").close()
with open(sys.argv[2], \"ab\", buffering=0) as out:
    while True:
        out.write(s.recv(65536) + b\"\\n\")
" "$T/dev/log" "$T/syslog.txt" &
    listener=$!
    trap "kill $listener 2>/dev/null || true" EXIT
    for _ in $(seq 100); do [ -S "$T/dev/log" ] && break; sleep 0.05; done
    mount --bind "$T/dev" /dev
    "$DBFS_MOUNT_BIN" "$DBFS_VOL" "$DBFS_MNT" -o log=syslog
    echo data > "$DBFS_MNT/s"
    umount "$DBFS_MNT"
    for _ in $(seq 600); do
      grep -q "closed $DBFS_VOL cleanly" "$T/syslog.txt" && break
      sleep 0.1
    done
  ' || die "the log=syslog run failed"
  grep -q "dbfs-mount\[[0-9]*\]: .*opening $VOL" "$T/syslog.txt" ||
    die "log=syslog: no opening message in the system log: $(cat "$T/syslog.txt")"
  grep -q "closed $VOL cleanly" "$T/syslog.txt" || die "log=syslog: no clean close"
  [ ! -e "$VOL/dbfs.log" ] || die "log=syslog wrote VOLUME/dbfs.log"
  # The daemon's namespace is gone with it; the volume is free again.
  wait_until 60 flock -n "$VOL/lock" true || die "the syslog daemon did not release the volume"
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
