#!/usr/bin/env bash
# dbfs@.service does what its lines say, without systemd: this test runs
# the unit's own ExecStartPre and ExecStart lines (%f, %i and the
# EnvironmentFile's variables substituted as systemd does) the way systemd
# would: the daemon serves in the foreground; SIGTERM (KillSignal, the
# stop) unmounts, flushes and exits 0, leaving a clean volume; after a
# SIGKILL (a crash: Restart=on-failure) ExecStartPre clears the dead mount
# and ExecStart mounts again with the data there. systemd-analyze verify
# checks the unit's syntax when it is installed.
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require mountpoint
UNIT="$DBFS_SOURCE_DIR/dist/systemd/dbfs@.service"
T=$(mktemp -d /tmp/dbfs-unit.XXXXXX)
VOL=$T/volume
MNT=$T/srv/data
DAEMON=""
cleanup_unit() {
  if [ -n "$DAEMON" ]; then kill -9 "$DAEMON" 2>/dev/null || true; wait "$DAEMON" 2>/dev/null || true; fi
  if is_mounted "$MNT"; then fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  rm -rf "$T"
}
trap cleanup_unit EXIT
mkdir -p "$MNT"
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL"
instance=$(systemd-escape -p "$MNT" 2>/dev/null || echo "${MNT#/}" | tr / -)
printf 'DBFS_VOLUME=%s\nDBFS_OPTIONS=noatime\n' "$VOL" >"$T/$instance.conf"

# The unit's line KEY=..., with its specifiers and variables substituted.
unit_line() {
  local line
  line=$(sed -n "s/^$1=//p" "$UNIT")
  [ -n "$line" ] || die "the unit has no $1"
  grep -q "^EnvironmentFile=/etc/dbfs/%i.conf$" "$UNIT" || die "unexpected EnvironmentFile"
  # shellcheck disable=SC1090
  (source "$T/$instance.conf"
   line=${line//%f/$MNT}
   line=${line//%i/$instance}
   line=${line//\$\{DBFS_VOLUME\}/$DBFS_VOLUME}
   line=${line//\$\{DBFS_OPTIONS\}/$DBFS_OPTIONS}
   line=${line//\$\$/\$}
   printf '%s\n' "$line")
}
start=$(unit_line ExecStart)
pre=$(unit_line ExecStartPre)
pre=${pre#-}  # "-": failure ignored
[[ $start == "dbfs-mount -f "* ]] || die "ExecStart is not dbfs-mount -f: $start"
grep -qx 'Type=exec' "$UNIT" && grep -qx 'Restart=on-failure' "$UNIT" &&
  grep -qx 'KillSignal=SIGTERM' "$UNIT" || die "Type/Restart/KillSignal changed"

run_start() {
  # systemd execs the words; they hold no quotes or globs here.
  # shellcheck disable=SC2086
  PATH=$DBFS_BIN_DIR:$PATH setsid $start >>"$T/journal" 2>&1 &
  DAEMON=$!
  up_or_dead() { is_mounted "$MNT" || ! pid_alive "$DAEMON"; }
  wait_until 10 up_or_dead || die "no mount within 10 s"
  is_mounted "$MNT" || die "ExecStart exited: $(cat "$T/journal")"
}

run_start
grep -q " $MNT fuse.dbfs .*noatime" /proc/mounts || die "DBFS_OPTIONS not applied"
grep -q "opening $VOL" "$T/journal" || die "-f does not log to stderr (the journal)"
echo kept >"$MNT/f"
# Stop: SIGTERM -> unmount, flush, close, exit 0.
kill -TERM "$DAEMON"
wait_until 60 pid_gone "$DAEMON" || die "the daemon did not stop on SIGTERM"
rc=0
wait "$DAEMON" || rc=$?
DAEMON=""
[ "$rc" = 0 ] || die "the stop exited $rc: $(tail -5 "$T/journal")"
is_mounted "$MNT" && die "still mounted after the stop"
grep -q "closed $VOL cleanly" "$T/journal" || die "no clean close in the journal"
"$DBFS_BIN_DIR/fsck.dbfs" -n "$VOL" >"$T/fsck" 2>&1 || die "fsck after the stop: $(cat "$T/fsck")"

# A crash, then systemd's restart: ExecStartPre clears the dead mount.
run_start
kill -9 "$DAEMON"
wait "$DAEMON" 2>/dev/null || true
DAEMON=""
is_mounted "$MNT" || die "expected a dead mount after SIGKILL"
PATH=$DBFS_BIN_DIR:$PATH sh -c "$pre" || true
is_mounted "$MNT" && die "ExecStartPre left the dead mount"
run_start
[ "$(cat "$MNT/f")" = kept ] || die "data lost across the crash and restart"
# A live mount is left alone by ExecStartPre.
PATH=$DBFS_BIN_DIR:$PATH sh -c "$pre" || true
is_mounted "$MNT" || die "ExecStartPre unmounted a live mount"
kill -TERM "$DAEMON"
wait_until 60 pid_gone "$DAEMON" || die "the daemon did not stop"
wait "$DAEMON" || die "the second stop failed"
DAEMON=""
log "PASS"
