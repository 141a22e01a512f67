#!/usr/bin/env bash
# A full backing disk (issue 12 item 12): the volume lives on a 48 MiB tmpfs.
# Filling it makes writes fail with ENOSPC (never EIO or EROFS) while
# checkpoints run; every file acknowledged (written and fsynced) reads back
# intact; once space is freed the same mount works again (writes, deletes,
# checkpoint); fsck -n -f is clean and everything survives a remount.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
require python3 mount
DBFS=$DBFS_BIN_DIR/dbfs

dbfs_setup  # the default volume is not used; ours lives on the small tmpfs
dbfs_unmount
SMALL=$T/small
mkdir -p "$SMALL"
mount -t tmpfs -o size=48m tmpfs "$SMALL" || skip "cannot mount a tmpfs"
CK=""
small_cleanup() {
  local rc=$?
  set +e
  if [ -n "$CK" ]; then kill "$CK"; wait "$CK"; fi
  if is_mounted "$MNT"; then fusermount3 -u "$MNT"; fi
  if [ -n "$DAEMON_PID" ]; then wait_until 30 pid_gone "$DAEMON_PID"; wait "$DAEMON_PID"; DAEMON_PID=""; fi
  if is_mounted "$SMALL"; then umount "$SMALL" || umount -l "$SMALL"; fi
  (exit "$rc")
  dbfs_cleanup
}
trap small_cleanup EXIT
VOL=$SMALL/vol
"$DBFS_BIN_DIR/mkfs.dbfs" -q "$VOL" >>"$LOG" 2>&1 || die "mkfs.dbfs failed"
# Space that can be given back later without touching the volume.
head -c $((6 << 20)) /dev/zero >"$SMALL/ballast"
DBFS_MOUNT_OPTS="allow_other,wal_segment_mb=2,checkpoint_mb=4,checkpoint_interval=1"
dbfs_mount

log "1. fill the disk (checkpoints running meanwhile)"
( while :; do "$DBFS" checkpoint --mount "$MNT" >/dev/null 2>&1 || true; sleep 0.2; done ) &
CK=$!
python3 - "$MNT" "$T/acked" <<'PY' || die "filling did not end in ENOSPC"
import errno, hashlib, os, sys
mnt, acked = sys.argv[1], sys.argv[2]
ok = []
err = None
for i in range(10000):
    data = os.urandom(256 * 1024 + i)
    path = f"{mnt}/f{i}"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        ok.append((path, hashlib.sha256(data).hexdigest()))
    except OSError as e:
        err = e
        break
with open(acked, "w") as f:
    for p, h in ok:
        f.write(f"{h}  {p}\n")
print(f"{len(ok)} files acknowledged, then: {err}", file=sys.stderr)
sys.exit(0 if err is not None and err.errno == errno.ENOSPC and len(ok) > 10 else 1)
PY
# More attempts on the full disk: each fails with ENOSPC, none with EIO/EROFS.
for i in 1 2 3; do
  out=$(head -c 1000000 /dev/urandom 2>/dev/null | dd of="$MNT/more$i" bs=1M conv=fsync 2>&1) &&
    die "a write on the full disk succeeded"
  case "$out" in *"No space left"*) ;; *) die "write on a full disk: $out" ;; esac
done
kill "$CK"
wait "$CK" 2>/dev/null || true
CK=""
sha256sum -c --quiet "$T/acked" || die "acknowledged data changed on the full disk"

log "2. space freed: the same mount works again"
rm "$SMALL/ballast"
echo "after" >"$MNT/after" || die "write after freeing space failed"
sync "$MNT/after"
for f in $(awk 'NR % 2 == 0 { print $2 }' "$T/acked"); do rm "$f" || die "rm $f"; done
# Checkpoints give the deleted files' log space back (each may stop early
# while the disk is still nearly full; the next goes on).
for i in 1 2 3 4 5; do
  "$DBFS" checkpoint --mount "$MNT" >"$T/ck.out" 2>&1 || die "dbfs checkpoint after freeing space failed"
  cat "$T/ck.out" >>"$LOG"
  grep -q '^stopped_no_space 0' "$T/ck.out" && break
done
head -c 3000000 /dev/urandom >"$MNT/big" || die "a 3 MB write after the checkpoints failed"
awk 'NR % 2 == 1' "$T/acked" >"$T/kept"
sha256sum -c --quiet "$T/kept" || die "acknowledged data changed"
bigsum=$(sha256sum <"$MNT/big")

log "3. fsck, remount, everything still there"
dbfs_unmount
fsck_clean
dbfs_mount
sha256sum -c --quiet "$T/kept" || die "acknowledged data lost across a remount"
[ "$(cat "$MNT/after")" = after ] || die "file written after freeing space lost"
[ "$(sha256sum <"$MNT/big")" = "$bigsum" ] || die "big file changed across a remount"
dbfs_unmount
dbfs_pass
