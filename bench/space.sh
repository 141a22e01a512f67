#!/bin/bash
# Usage: bench/space.sh [--quick|--smoke] [--size MIB] [--segment MIB] [--dir DIR] [--keep]
#
# Space reclamation (issue 4): on a fresh volume, write SIZE MiB of files,
# overwrite them randomly three times over, delete half of them, then run
# `dbfs checkpoint`. Prints the volume's size on disk (du of the volume
# directory: WAL + LMDB) before and after, against the live bytes, as a
# ratio; the target is <= 1.5. Checks every remaining file's hash after the
# checkpoint and after a remount. Exit 0 when the ratio is within 1.5 and the
# data is intact, 1 otherwise, 2 on a setup error.
#
# Defaults: 1024 MiB, 64 MiB WAL segments (the default). --quick: 128 MiB with
# 4 MiB segments. --smoke (CI): 16 MiB with 1 MiB segments.
# Environment: BUILD_DIR (default <repo>/build), DBFS_BIN_DIR; SPACE_MOUNT_OPTS: more
# -o options (bench/history.sh measures -o history=1h with it).
set -euo pipefail
SIZE=1024
SEG=64
DIR=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) SIZE=128; SEG=4; shift ;;
    --smoke) SIZE=16; SEG=1; shift ;;
    --size) SIZE=${2:?}; shift 2 ;;
    --segment) SEG=${2:?}; shift 2 ;;
    --dir) DIR=${2:?}; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--quick|--smoke] [--size MIB] [--segment MIB] [--dir DIR] [--keep]" >&2; exit 2 ;;
  esac
done
REPO=$(cd "$(dirname "$0")/.." && pwd)
BIN=${DBFS_BIN_DIR:-${BUILD_DIR:-$REPO/build}/bin}
for t in mkfs.dbfs dbfs-mount dbfs; do
  [ -x "$BIN/$t" ] || { echo "$BIN/$t not found; build first" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

T=$(mktemp -d "${DIR:-${TMPDIR:-/tmp}}/dbfs-space-XXXXXX")
VOL=$T/vol
MNT=$T/mnt
mkdir -p "$MNT"
PID=""
ok=0
cleanup() {
  if awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; then
    fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null || true
  fi
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$PID" 2>/dev/null || true
  fi
  if [ "$KEEP" = 1 ] || [ "$ok" != 1 ]; then echo "kept $T" >&2; else rm -rf "$T"; fi
}
trap cleanup EXIT

mounted() { awk -v m="$MNT" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
mount_vol() {
  "$BIN/dbfs-mount" "$VOL" "$MNT" -f -o "wal_segment_mb=$SEG,checkpoint_mb=0,checkpoint_interval=0${SPACE_MOUNT_OPTS:+,$SPACE_MOUNT_OPTS}" \
    >>"$T/dbfs.log" 2>&1 &
  PID=$!
  for _ in $(seq 200); do mounted && return 0; kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
  echo "mount failed; see $T/dbfs.log" >&2
  exit 2
}
unmount_vol() {
  fusermount3 -u "$MNT"
  for _ in $(seq 300); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
  PID=""
}
du_vol() { du -sb "$VOL" | cut -f1; }

"$BIN/mkfs.dbfs" -q "$VOL"
mount_vol

# Files of 64 MiB (or SIZE/8 when smaller); hashes of the survivors go to $T/hashes.
python3 - "$MNT" "$SIZE" "$T/hashes" <<'EOF'
import hashlib, os, random, sys
mnt, size_mib, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(1)
file_mib = min(64, max(1, size_mib // 8))
n = max(2, size_mib // file_mib)
fsize = file_mib << 20
block = os.urandom(1 << 20)
data = {}
for i in range(n):
    p = os.path.join(mnt, "f%03d" % i)
    with open(p, "wb") as f:
        for off in range(0, fsize, 1 << 20):
            f.write(block[(i * 4096) % 4096:] + block[:(i * 4096) % 4096])
# Overwrite every file randomly, three times its size, in 64 KiB..1 MiB pieces.
for i in range(n):
    p = os.path.join(mnt, "f%03d" % i)
    fd = os.open(p, os.O_WRONLY)
    written = 0
    while written < 3 * fsize:
        ln = rng.randrange(64 << 10, (1 << 20) + 1)
        off = rng.randrange(0, fsize - ln + 1)
        piece = os.urandom(ln)
        os.pwrite(fd, piece, off)
        written += ln
    os.close(fd)
# Delete half.
with open(out, "w") as h:
    for i in range(n):
        p = os.path.join(mnt, "f%03d" % i)
        if i % 2 == 0:
            os.unlink(p)
        else:
            h.write("%s %s\n" % (hashlib.sha256(open(p, "rb").read()).hexdigest(), p))
EOF
sync -f "$MNT"
check() {
  python3 - "$T/hashes" <<'EOF' || { echo "DATA MISMATCH ($1)" >&2; exit 1; }
import hashlib, sys
for line in open(sys.argv[1]):
    h, p = line.split()
    if hashlib.sha256(open(p, "rb").read()).hexdigest() != h:
        sys.exit("hash mismatch: " + p)
EOF
}
LIVE=$(python3 -c "import os,sys; print(sum(os.path.getsize(os.path.join(sys.argv[1], f)) for f in os.listdir(sys.argv[1]) if f.startswith('f')))" "$MNT")
BEFORE=$(du_vol)
start=$(date +%s%N)
"$BIN/dbfs" checkpoint --mount "$MNT" >"$T/checkpoint.txt"
secs=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
AFTER=$(du_vol)
check "after the checkpoint"
unmount_vol
mount_vol
check "after a remount"
unmount_vol

ratio=$(awk -v a="$AFTER" -v l="$LIVE" 'BEGIN { printf "%.2f", a / l }')
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "space: wrote $SIZE MiB, overwrote 3x, deleted half; WAL segments of $SEG MiB"
printf '  %-28s %10s MiB\n' "live file data" "$(mib "$LIVE")"
printf '  %-28s %10s MiB\n' "volume before checkpoint" "$(mib "$BEFORE")"
printf '  %-28s %10s MiB  (%s s)\n' "volume after checkpoint" "$(mib "$AFTER")" "$secs"
printf '  %-28s %10s x live (target <= 1.5)\n' "ratio" "$ratio"
sed 's/^/  checkpoint: /' "$T/checkpoint.txt"
if awk -v r="$ratio" 'BEGIN { exit !(r <= 1.5) }'; then ok=1; exit 0; fi
echo "FAIL: the volume takes $ratio x its live data after a checkpoint" >&2
exit 1
