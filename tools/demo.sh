#!/usr/bin/env bash
# The README's first command ends here: make a volume, mount it, show a few
# operations working, unmount cleanly. Uses a fresh temp dir; cleans up on
# every path.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${DBFS_BIN:-$here/build/bin}
work=$(mktemp -d /tmp/dbfs-demo.XXXXXX)
vol=$work/volume
mnt=$work/mnt
mkdir -p "$mnt"
cleanup() {
  if grep -qs " $mnt fuse" /proc/mounts; then fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
run() { say "$*"; "$@"; }

run "$bin/mkfs.dbfs" "$vol"
run "$bin/dbfs-mount" "$vol" "$mnt"
run findmnt "$mnt"
run mkdir -p "$mnt/project/src"
say "echo 'int main(void) { return 0; }' > $mnt/project/src/main.c"
echo 'int main(void) { return 0; }' > "$mnt/project/src/main.c"
run ln -s src/main.c "$mnt/project/main-link.c"
run mv "$mnt/project/src/main.c" "$mnt/project/src/app.c"
run setfattr -n user.owner -v demo "$mnt/project/src/app.c"
run getfattr -d "$mnt/project/src/app.c"
run dd if=/dev/urandom of="$mnt/project/blob" bs=1M count=8 status=none
run sha256sum "$mnt/project/blob"
run ls -laR "$mnt/project"
run df -h "$mnt"
run fusermount3 -u "$mnt"
say "mount again: everything is still there"
run "$bin/dbfs-mount" "$vol" "$mnt"
run sha256sum "$mnt/project/blob"
run cat "$mnt/project/src/app.c"
run fusermount3 -u "$mnt"
run "$bin/fsck.dbfs" -n "$vol"
echo
echo "DBFS demo finished: volume created, mounted, used, remounted, checked."
