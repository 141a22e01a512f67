#!/usr/bin/env bash
# Where a volume may live (issue 12 item 11): a volume on a filesystem that
# cannot hold sockets — plfs --no-sockets, a FUSE pass-through whose mknod of
# a socket fails with ENOSYS, like several FUSE and network filesystems —
# mounts and works, because the daemon's runtime files (the Elle socket and
# token) go to the runtime directory (/run/dbfs/..., or -o runtime_dir=),
# never into the volume. Before the fix the mount failed with ENOSYS.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require python3
PLFS=$DBFS_BIN_DIR/plfs
[ -x "$PLFS" ] || skip "plfs is not built (-DDBFS_POWERLOSS_TESTS=OFF)"

dbfs_setup  # the default volume is not used; ours lives on plfs
dbfs_unmount
HOME_BACKING=$T/backing
HOME_MNT=$T/home
mkdir -p "$HOME_BACKING" "$HOME_MNT"
"$PLFS" "$HOME_BACKING" "$HOME_MNT" --mt --no-sockets >>"$LOG" 2>&1 || die "plfs did not mount"
home_cleanup() {
  local rc=$?
  set +e
  if is_mounted "$MNT"; then fusermount3 -u "$MNT"; fi
  if [ -n "$DAEMON_PID" ]; then wait_until 30 pid_gone "$DAEMON_PID"; wait "$DAEMON_PID"; DAEMON_PID=""; fi
  if is_mounted "$HOME_MNT"; then fusermount3 -u "$HOME_MNT" || umount -l "$HOME_MNT"; fi
  (exit "$rc")
  dbfs_cleanup
}
trap home_cleanup EXIT
is_mounted "$HOME_MNT" || die "plfs mount missing"

log "1. the volume's filesystem refuses sockets"
python3 - "$HOME_MNT/probe.sock" <<'PY' || die "plfs --no-sockets accepted a socket"
import errno, socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.bind(sys.argv[1])
except OSError as e:
    sys.exit(0 if e.errno == errno.ENOSYS else 1)
sys.exit(1)
PY

log "2. a volume there mounts and works"
VOL=$HOME_MNT/vol
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL" >>"$LOG" 2>&1 || die "mkfs.dbfs on plfs failed"
dbfs_mount
mkdir "$MNT/dir"
for i in $(seq 1 20); do head -c $((i * 5000)) /dev/urandom >"$MNT/dir/f$i"; done
sum1=$(cat "$MNT"/dir/f* | md5sum)
run=$(grep -o 'elle protocol server on [^ ]*' "$LOG" | tail -1 | sed 's/.* on //; s|/elle.sock$||')
[ -n "$run" ] || die "the Elle server did not start"
case "$run" in "$VOL"*) die "runtime files inside the volume: $run" ;; esac
[ -S "$run/elle.sock" ] || die "no socket in the runtime directory $run"
[ "$(stat -c %a "$run")" = 700 ] || die "runtime directory $run is mode $(stat -c %a "$run")"
find "$VOL" -type s | grep -q . && die "a socket inside the volume"
dbfs_remount
[ "$(cat "$MNT"/dir/f* | md5sum)" = "$sum1" ] || die "data changed across a remount"

log "3. -o runtime_dir= puts them where asked"
dbfs_unmount
DBFS_MOUNT_OPTS="allow_other,runtime_dir=$T/run"
dbfs_mount
wait_until 10 test -S "$T/run/elle.sock" || die "no socket in -o runtime_dir=$T/run"
dbfs_unmount
[ ! -e "$T/run/elle.sock" ] || die "the socket outlived the mount"
fsck_clean
dbfs_pass
