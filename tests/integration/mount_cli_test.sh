#!/bin/bash
# The tools as a user runs them: mkfs refusals, daemonized dbfs-mount (usable
# as soon as it returns), refusals of a second mount / missing dir / foreign
# dir / damaged superblock, and fsck -n after a clean unmount.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs the DBFS tools"
require fusermount3
dbfs_setup  # mkfs + a foreground mount at $MNT (used for the busy checks)

BIN=$DBFS_BIN_DIR
V2=$T/vol2
M2=$T/mnt2
M3=$T/mnt3
mkdir -p "$M2" "$M3"

# ---- mkfs ----
"$BIN/mkfs.dbfs" -q "$V2" || die "mkfs.dbfs of a new dir failed"
[ -f "$V2/superblock" ] || die "no superblock"
if "$BIN/mkfs.dbfs" -q "$V2" 2>"$T/err"; then die "mkfs.dbfs overwrote an existing volume without --force"; fi
[ -s "$T/err" ] || die "mkfs.dbfs refused silently"
mkdir -p "$T/notempty" && echo data >"$T/notempty/file"
if "$BIN/mkfs.dbfs" -q "$T/notempty" 2>/dev/null; then die "mkfs.dbfs accepted a non-empty dir"; fi
[ "$(cat "$T/notempty/file")" = data ] || die "mkfs.dbfs touched a dir it refused"
"$BIN/mkfs.dbfs" -q --force "$V2" || die "mkfs.dbfs --force failed"
if "$BIN/mkfs.dbfs" -q --force "$VOL" 2>/dev/null; then die "mkfs.dbfs --force reformatted a mounted volume"; fi
echo still >"$MNT/alive" && [ "$(cat "$MNT/alive")" = still ] || die "mounted volume damaged by mkfs attempt"

# ---- daemonized mount ----
find_daemon() { # pid of the dbfs-mount serving volume $1
  local p
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "dbfs-mount.* $1 "; then
      basename "$p"
      return 0
    fi
  done
  return 1
}
log "daemonized mount"
"$BIN/dbfs-mount" "$V2" "$M2" -o allow_other >>"$LOG" 2>&1 || die "dbfs-mount (daemon mode) failed"
is_mounted "$M2" || die "dbfs-mount returned before the mount was live"
echo hello >"$M2/f" || die "cannot write right after dbfs-mount returned"
[ "$(cat "$M2/f")" = hello ] || die "read back failed"
D2=$(find_daemon "$V2") || die "cannot find the daemon of $V2"
DAEMON2=$D2
DREPAIR=""
cleanup2() {
  if is_mounted "$M2"; then fusermount3 -u "$M2" || umount -l "$M2"; fi
  if [ -n "${DAEMON2:-}" ] && pid_alive "$DAEMON2"; then
    wait_until 30 pid_gone "$DAEMON2" || kill -9 "$DAEMON2"
  fi
  if is_mounted "$T/mrepair"; then fusermount3 -u "$T/mrepair" || umount -l "$T/mrepair"; fi
  if [ -n "$DREPAIR" ] && pid_alive "$DREPAIR"; then
    wait_until 30 pid_gone "$DREPAIR" || kill -9 "$DREPAIR"
  fi
}
trap 'cleanup2; dbfs_cleanup' EXIT

# ---- refusals ----
expect_refused() { # what, cmd...
  local what=$1
  shift
  local rc=0
  "$@" >"$T/out" 2>&1 || rc=$?
  if [ "$rc" = 0 ]; then
    if is_mounted "$M3"; then fusermount3 -u "$M3"; fi
    die "dbfs-mount accepted $what"
  fi
  [ -s "$T/out" ] || die "dbfs-mount refused $what without a message"
  is_mounted "$M3" && die "dbfs-mount left a mount behind after refusing $what"
  log "refused $what: $(head -1 "$T/out")"
}
expect_refused "a volume mounted by another daemon" "$BIN/dbfs-mount" "$V2" "$M3"
expect_refused "a volume mounted by another daemon (-f)" "$BIN/dbfs-mount" "$VOL" "$M3" -f
expect_refused "a missing mount point" "$BIN/dbfs-mount" "$V2" "$T/no-such-dir"
expect_refused "a missing volume" "$BIN/dbfs-mount" "$T/no-such-volume" "$M3"
mkdir -p "$T/foreign" && echo x >"$T/foreign/file"
expect_refused "a directory that is not a volume" "$BIN/dbfs-mount" "$T/foreign" "$M3"
cp -a "$V2" "$T/damaged" 2>/dev/null || true  # copied while mounted; only the superblock matters
printf '\xff' | dd of="$T/damaged/superblock" bs=1 seek=10 conv=notrunc status=none
expect_refused "a damaged superblock" "$BIN/dbfs-mount" "$T/damaged" "$M3"

# ---- unmount + fsck ----
fusermount3 -u "$M2" || die "fusermount3 -u of the daemonized mount failed"
wait_until 60 pid_gone "$D2" || die "daemon did not exit after unmount"
DAEMON2=""
fsck_clean "$V2"
rc=0
"$BIN/fsck.dbfs" -n "$T/damaged" >>"$LOG" 2>&1 || rc=$?
[ "$rc" -ge 4 ] || die "fsck.dbfs -n of a damaged superblock exited $rc, want >= 4"
# The fsck.dbfs binary repairs (-y), not only the library: a cleanly
# unmounted copy with a bad superblock checksum is found (-n: 4, nothing
# changed), repaired (-y: 1), then clean (-n -f, no warning) and mountable
# with its data.
cp -a "$V2" "$T/repair"
printf '\xff' | dd of="$T/repair/superblock" bs=1 seek=508 conv=notrunc status=none
cp "$T/repair/superblock" "$T/superblock.bad"
rc=0
"$BIN/fsck.dbfs" -n "$T/repair" >>"$LOG" 2>&1 || rc=$?
[ "$rc" = 4 ] || die "fsck.dbfs -n of a bad superblock checksum exited $rc, want 4"
cmp -s "$T/repair/superblock" "$T/superblock.bad" || die "fsck.dbfs -n changed the superblock"
rc=0
"$BIN/fsck.dbfs" -y "$T/repair" >>"$LOG" 2>&1 || rc=$?
[ "$rc" = 1 ] || die "fsck.dbfs -y of a bad superblock checksum exited $rc, want 1 (corrected)"
fsck_clean "$T/repair"
mkdir -p "$T/mrepair"
"$BIN/dbfs-mount" "$T/repair" "$T/mrepair" -o allow_other >>"$LOG" 2>&1 || die "the repaired volume does not mount"
DREPAIR=$(find_daemon "$T/repair") || die "cannot find the repaired volume's daemon"
[ "$(cat "$T/mrepair/f")" = hello ] || die "the repaired volume lost its data"
fusermount3 -u "$T/mrepair"
wait_until 60 pid_gone "$DREPAIR" || die "daemon did not exit after unmounting the repaired volume"
DREPAIR=""
# Remount in the foreground style and see the data.
"$BIN/dbfs-mount" "$V2" "$M2" -o allow_other >>"$LOG" 2>&1 || die "second daemonized mount failed"
DAEMON2=$(find_daemon "$V2") || die "cannot find the second daemon"
[ "$(cat "$M2/f")" = hello ] || die "data lost across unmount/mount"
fusermount3 -u "$M2"
wait_until 60 pid_gone "$DAEMON2" || die "daemon did not exit after the second unmount"
DAEMON2=""
dbfs_unmount
fsck_clean
dbfs_pass
