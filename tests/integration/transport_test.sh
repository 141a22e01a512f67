#!/usr/bin/env bash
# The FUSE transport (docs/ARCHITECTURE.md section 7, "Transport"):
# -o io_uring=off (the default) serves /dev/fuse and says so, also where the
# module allows io_uring; auto falls back to /dev/fuse
# when the fuse module does not allow io_uring and says why; on refuses to
# mount then, with the reason, and mounts nothing. Where the module allows it
# (the parameter is turned on here when root), on and auto serve through the
# rings: the log says so only once a request arrived through one, and the
# daemon runs one fuse-ring thread per CPU. The refusals use a copy of the
# parameter (DBFS_FUSE_URING_PARAM), so nothing global changes for them.
source "$(dirname "$0")/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
unset DBFS_IO_URING

ring_threads() {
  local n=0 t
  for t in /proc/"$DAEMON_PID"/task/*/comm; do
    case "$(cat "$t" 2>/dev/null)" in fuse-ring-*) n=$((n + 1)) ;; esac
  done
  echo "$n"
}
expect_log() { grep -qF -- "$1" "$LOG" || die "the daemon log does not say: $1"; }
roundtrip() {
  echo "$1" >"$MNT/f" || die "write through the mount ($1)"
  [ "$(cat "$MNT/f")" = "$1" ] || die "read back through the mount ($1)"
}

# off: the classic transport, no rings.
DBFS_MOUNT_OPTS=allow_other,io_uring=off dbfs_setup
roundtrip off
expect_log "fuse: transport /dev/fuse (io_uring=off)"
[ "$(ring_threads)" = 0 ] || die "io_uring=off runs fuse-ring threads"
dbfs_unmount

# auto, the module not allowing io_uring: falls back and says why.
echo N >"$T/enable_uring"
: >"$LOG"
DBFS_FUSE_URING_PARAM=$T/enable_uring DBFS_MOUNT_OPTS=allow_other,io_uring=auto dbfs_mount
roundtrip auto-fallback
expect_log "fuse: transport /dev/fuse (io_uring=auto fell back: the fuse module's enable_uring parameter is N"
[ "$(ring_threads)" = 0 ] || die "the fallback runs fuse-ring threads"
dbfs_unmount

# on, the module not allowing io_uring: refused, nothing mounted.
rc=0
DBFS_FUSE_URING_PARAM=$T/enable_uring timeout 60 "$DBFS_BIN_DIR/dbfs-mount" "$VOL" "$MNT" -f \
  -o io_uring=on >"$T/on.out" 2>&1 || rc=$?
cat "$T/on.out" >>"$LOG"
[ "$rc" != 0 ] || die "io_uring=on mounted although io_uring is unavailable"
grep -qF "io_uring=on: io_uring is unavailable: the fuse module's enable_uring parameter is N" \
  "$T/on.out" || die "io_uring=on failed without saying why: $(cat "$T/on.out")"
! is_mounted "$MNT" || die "io_uring=on left a mount"
# A bad value is refused too.
rc=0
timeout 60 "$DBFS_BIN_DIR/dbfs-mount" "$VOL" "$MNT" -f -o io_uring=maybe >"$T/bad.out" 2>&1 || rc=$?
[ "$rc" != 0 ] && grep -qF "io_uring: 'maybe' is not one of auto, on, off" "$T/bad.out" ||
  die "io_uring=maybe: $(cat "$T/bad.out")"

# The real thing, where the module allows it.
param=/sys/module/fuse/parameters/enable_uring
if [ -e "$param" ] && [ "$(cat "$param")" != Y ]; then echo Y >"$param" 2>/dev/null || true; fi
if [ ! -e "$param" ] || [ "$(cat "$param")" != Y ]; then
  log "io_uring itself NOT tested: $param is $(cat "$param" 2>/dev/null || echo missing) and cannot be set to Y here"
  dbfs_pass
  exit 0
fi
# The default is off even where the module allows io_uring.
: >"$LOG"
DBFS_MOUNT_OPTS=allow_other dbfs_mount
roundtrip default
expect_log "fuse: transport /dev/fuse (io_uring=off)"
[ "$(ring_threads)" = 0 ] || die "the default runs fuse-ring threads"
dbfs_unmount
for mode in on auto; do
  : >"$LOG"
  DBFS_MOUNT_OPTS=allow_other,io_uring=$mode dbfs_mount
  roundtrip "$mode"
  ls -la "$MNT" >/dev/null
  expect_log "fuse: transport io_uring (requests arrive through the rings)"
  [ "$(ring_threads)" = "$(nproc --all)" ] ||
    die "io_uring=$mode: $(ring_threads) fuse-ring threads for $(nproc --all) CPUs"
  dbfs_unmount
done
log "io_uring: on and auto served through the rings; off and the fallback through /dev/fuse"
dbfs_pass
