#!/usr/bin/env bash
# Non-root users (issue 12 item 13): a user makes and mounts their own
# volume through fusermount3, without and with allow_other; other users are
# kept out (no allow_other) or checked against the file modes (allow_other);
# `dbfs tx` of a non-root user binds only that user's processes: it cannot
# bind another user's process, and a set-user-ID child of its command is not
# part of the transaction.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
[ "$(id -u)" = 0 ] || skip "needs root to switch users"
require setpriv getfattr fusermount3
[ -u "$(command -v fusermount3)" ] || skip "fusermount3 is not set-user-ID root"

OWNER=65534  # nobody: the volume's user
OTHER=65533  # another unprivileged user
as() {
  local uid=$1
  shift
  setpriv --reuid="$uid" --regid="$uid" --clear-groups env -u XDG_RUNTIME_DIR HOME=/ "$@"
}

T=$(mktemp -d /tmp/dbfs-users-XXXXXX)
chmod 755 "$T"
LOG=$T/log
: >"$LOG"
UDIR=$T/u
mkdir -p "$UDIR/mnt"
chown -R "$OWNER:$OWNER" "$UDIR"
VOL=$UDIR/vol
MNT=$UDIR/mnt
# Debian's fuse3 makes /dev/fuse world-usable (udev, mode 0666); containers
# may not: a user's mount needs it.
fuse_mode=$(stat -c %a /dev/fuse)
conf_added=0
SLEEPER=""
users_cleanup() {
  local rc=$?
  set +e
  if [ -n "$SLEEPER" ]; then kill "$SLEEPER"; wait "$SLEEPER"; fi
  if is_mounted "$MNT"; then as "$OWNER" fusermount3 -u "$MNT" || umount -l "$MNT"; fi
  if [ -n "$DAEMON_PID" ]; then wait_until 30 pid_gone "$DAEMON_PID"; wait "$DAEMON_PID"; fi
  chmod "$fuse_mode" /dev/fuse
  [ "$conf_added" = 1 ] && sed -i '/^user_allow_other # dbfs users_test$/d' /etc/fuse.conf
  if [ "$rc" != 0 ] && [ "$rc" != 77 ]; then tail -c 8000 "$LOG" >&2; fi
  rm -rf --one-file-system "$T"
  exit "$rc"
}
trap users_cleanup EXIT
chmod 666 /dev/fuse

# mount_as_owner OPTS: dbfs-mount -f as the owner (fusermount3 does the mount).
mount_as_owner() {
  as "$OWNER" "$DBFS_BIN_DIR/dbfs-mount" "$VOL" "$MNT" -f ${1:+-o "$1"} >>"$LOG" 2>&1 &
  DAEMON_PID=$!
  wait_until 10 bash -c "is_mounted() { awk -v m=\"\$1\" '\$2 == m { f = 1 } END { exit !f }' /proc/mounts; }; is_mounted '$MNT' || ! kill -0 $DAEMON_PID" ||
    die "mount did not appear"
  is_mounted "$MNT" || die "dbfs-mount as uid $OWNER failed: $(tail -3 "$LOG")"
}
unmount_as_owner() {
  as "$OWNER" fusermount3 -u "$MNT" || die "fusermount3 -u as the owner failed"
  wait_until 30 pid_gone "$DAEMON_PID" || die "daemon did not exit"
  wait "$DAEMON_PID" || die "daemon exited non-zero"
  DAEMON_PID=""
}
expect_fail() {
  local what=$1
  shift
  if "$@" >>"$LOG" 2>&1; then die "$what succeeded"; fi
}

log "1. a user makes and mounts their own volume (no allow_other)"
as "$OWNER" "$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL" >>"$LOG" 2>&1 || die "mkfs.dbfs as uid $OWNER failed"
mount_as_owner ""
grep -q " $MNT fuse.dbfs .*nosuid,nodev.*user_id=$OWNER" /proc/mounts ||
  die "unexpected mount: $(grep " $MNT " /proc/mounts)"
as "$OWNER" sh -c "echo public >'$MNT/pub' && echo secret >'$MNT/secret' && chmod 600 '$MNT/secret' && mkdir '$MNT/shared' && chmod 777 '$MNT/shared'" ||
  die "the owner cannot write to their own volume"
[ "$(as "$OWNER" cat "$MNT/pub")" = public ] || die "the owner cannot read back"
expect_fail "another user reading a mount without allow_other" as "$OTHER" cat "$MNT/pub"
unmount_as_owner

log "2. with allow_other: other users are checked against the modes"
if ! grep -q '^user_allow_other' /etc/fuse.conf 2>/dev/null; then
  echo 'user_allow_other # dbfs users_test' >>/etc/fuse.conf
  conf_added=1
fi
mount_as_owner allow_other
[ "$(as "$OTHER" cat "$MNT/pub")" = public ] || die "another user cannot read a 644 file"
expect_fail "another user reading a 600 file" as "$OTHER" cat "$MNT/secret"
expect_fail "another user creating in a 755 directory" as "$OTHER" touch "$MNT/intruder"
as "$OTHER" sh -c "echo mine >'$MNT/shared/other'" || die "another user cannot write a 777 directory"
[ "$(stat -c %u "$MNT/shared/other")" = "$OTHER" ] || die "a new file is not owned by its creator"

log "3. dbfs tx of a non-root user binds only that user's processes"
as "$OWNER" "$DBFS_BIN_DIR/dbfs" tx run --mount "$MNT" -- sh -c "echo committed >'$MNT/t1'" ||
  die "dbfs tx run as the owner failed"
[ "$(cat "$MNT/t1")" = committed ] || die "the owner's transaction did not commit"
# Not through as(): a backgrounded function is a subshell, and $! its pid.
setpriv --reuid="$OTHER" --regid="$OTHER" --clear-groups sleep 60 &
SLEEPER=$!
wait_until 5 test -e "/proc/$SLEEPER" || die "no sleeper"
out=$(as "$OWNER" getfattr -n "dbfs.tx.begin:$SLEEPER" --only-values "$MNT" 2>&1) &&
  die "the owner bound another user's process: $out"
case "$out" in *"not permitted"*) ;; *) die "binding another user's process: $out" ;; esac
kill "$SLEEPER"
wait "$SLEEPER" 2>/dev/null || true
SLEEPER=""
# A set-user-ID root program run inside the owner's transaction works on its
# own: its file exists after the transaction aborted; the owner's does not.
cp "$(command -v touch)" "$T/suid-touch"
chmod 4755 "$T/suid-touch"
rc=0
as "$OWNER" "$DBFS_BIN_DIR/dbfs" tx run --mount "$MNT" -- sh -c "echo x >'$MNT/shared/in-tx'; '$T/suid-touch' '$MNT/shared/by-root'; exit 3" || rc=$?
[ "$rc" = 3 ] || die "dbfs tx run exited $rc, expected the command's 3"
[ ! -e "$MNT/shared/in-tx" ] || die "the aborted transaction's file exists"
[ -e "$MNT/shared/by-root" ] || die "the set-user-ID child's file was taken into the owner's transaction"
[ "$(stat -c %u "$MNT/shared/by-root")" = 0 ] || die "the set-user-ID child's file is not root's"
unmount_as_owner
fsck_clean
log "PASS"
