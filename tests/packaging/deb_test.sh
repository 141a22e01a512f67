#!/usr/bin/env bash
# The Debian package, as a user gets it: cpack -G DEB builds dbfs_*.deb from
# this build tree; `apt install ./dbfs_*.deb` installs it into this machine;
# a smoke test uses only the installed paths (mkfs -t dbfs, an /etc/fstab
# line + mount -a, write, umount, fsck -t dbfs, the Python module, a C
# program built with pkg-config, the systemd unit verified); then
# `apt-get purge` removes it and the test checks nothing is left. Every path
# out restores the machine: the fstab line goes, the mount goes, the package
# goes. Skipped if a dbfs package was installed before (not ours to remove).
source "$(dirname "$0")/../integration/lib.sh"
[ "$DBFS_PLAIN" = 1 ] && skip "needs a DBFS mount"
[ "$(id -u)" = 0 ] || skip "needs root (dpkg)"
require cpack dpkg apt-get mount fsck mkfs pkg-config cc
BUILD=${DBFS_BUILD_DIR:?}
if [ "$(dpkg-query -W -f='${Status}' dbfs 2>/dev/null || true)" = "install ok installed" ]; then
  skip "a dbfs package is already installed; not touching it"
fi

T=$(mktemp -d /tmp/dbfs-deb.XXXXXX)
VOL=$T/volume
MNT=$T/mnt
MARK="# dbfs-deb-test $$"
installed=0
cleanup_deb() {
  local rc=$?
  if is_mounted "$MNT"; then umount "$MNT" 2>/dev/null || umount -l "$MNT"; fi
  # Our fstab lines only (the marker comment, the entry naming our temp
  # volume), never the rest of the file.
  if grep -qF -e "$MARK" -e "$VOL $MNT " /etc/fstab; then
    grep -vF -e "$MARK" -e "$VOL $MNT " /etc/fstab >"$T/fstab.new" || true
    cat "$T/fstab.new" >/etc/fstab
  fi
  if ((installed)); then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y dbfs >>"$T/apt.log" 2>&1 ||
      dpkg --purge dbfs >>"$T/apt.log" 2>&1 || true
  fi
  rm -rf "$T"
  exit "$rc"
}
trap cleanup_deb EXIT

log "cpack -G DEB"
(cd "$T" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$T/pkg") >"$T/cpack.log" 2>&1 ||
  { cat "$T/cpack.log" >&2; die "cpack failed"; }
deb=$(ls "$T"/pkg/dbfs_*.deb)
[[ $(basename "$deb") =~ ^dbfs_[0-9.]+_amd64\.deb$ ]] || die "unexpected package name $deb"
depends=$(dpkg-deb -f "$deb" Depends)
log "Depends: $depends"
# libfuse itself is linked statically (third_party/libfuse); fuse3 gives
# fusermount3, liburing2 and libnuma1 its io_uring transport.
for d in fuse3 liblmdb0 libc6 libstdc++6 liburing2 libnuma1; do
  [[ $depends == *"$d"* ]] || die "Depends lacks $d: $depends"
done
[[ $depends != *libfuse3* ]] || die "Depends has libfuse3, but libfuse is linked statically: $depends"
# The package holds what a user needs, under /usr.
contents=$(dpkg-deb -c "$deb" | awk '{ print $6 }' | sed 's|^\./|/|')
for f in /usr/bin/dbfs /usr/bin/dbfs-mount /usr/sbin/mkfs.dbfs /usr/sbin/fsck.dbfs \
    /usr/sbin/fsck.fuse.dbfs /usr/sbin/mount.dbfs /usr/sbin/mount.fuse.dbfs /usr/share/man/man1/dbfs.1 \
    /usr/share/man/man8/dbfs-mount.8 /usr/share/man/man7/dbfs.7 /usr/share/man/man3/libdbfs.3 \
    /usr/share/bash-completion/completions/dbfs "/usr/lib/systemd/system/dbfs@.service" \
    /usr/include/dbfs/dbfs.h /usr/include/dbfs/dbfs.hpp \
    /usr/lib/python3/dist-packages/dbfs/__init__.py; do
  grep -qxF "$f" <<<"$contents" || die "the package lacks $f"
done

log "apt install ./$(basename "$deb")"
installed=1
cp "$deb" "$T/dbfs.deb"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$T/dbfs.deb" \
  >"$T/apt.log" 2>&1 || { cat "$T/apt.log" >&2; die "apt install failed"; }

# From here on only installed paths: a clean PATH, no build tree.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
unset DBFS_BIN_DIR PYTHONPATH
cd /
[ "$(command -v dbfs)" = /usr/bin/dbfs ] || die "dbfs is not /usr/bin/dbfs"
mkfs -t dbfs "$VOL" >"$T/mkfs.log" 2>&1 || { cat "$T/mkfs.log" >&2; die "mkfs -t dbfs failed"; }
mkdir -p "$MNT"
printf '%s\n%s %s fuse.dbfs noatime,nofail 0 0\n' "$MARK" "$VOL" "$MNT" >>/etc/fstab
mount -a -t fuse.dbfs || die "mount -a failed"
is_mounted "$MNT" || die "mount -a did not mount $MNT"
grep -q " $MNT fuse.dbfs .*noatime" /proc/mounts || die "fstab options not applied"
echo "hello from the package" >"$MNT/hello"
dbfs tx run --mount "$MNT" -- sh -c "echo one > $MNT/a && echo two > $MNT/b" ||
  die "dbfs tx run failed"
grep -q '^commits [1-9]' <<<"$(dbfs stats --mount "$MNT")" || die "dbfs stats shows no commits"

# The Python module, from the system python3 and its own path.
/usr/bin/python3 - "$MNT" <<'PY' || die "the installed Python module failed"
import sys, dbfs
mnt = sys.argv[1]
with dbfs.transaction(mnt) as tx:
    open(mnt + "/py", "w").write("py")
assert int(tx.csn) > 0
assert open(mnt + "/py").read() == "py"
PY

# A C program built against the installed library with pkg-config.
cat >"$T/prog.c" <<'C'
#include <dbfs/dbfs.h>
#include <stdio.h>
int main(int argc, char **argv) {
  dbfs_tx *tx;
  int rc = dbfs_tx_begin(argv[1], 0, &tx);
  if (rc != DBFS_OK) { fprintf(stderr, "begin: %s\n", dbfs_strerror(rc)); return 1; }
  FILE *f = fopen(argv[2], "w");
  if (!f) return 1;
  fputs("c\n", f);
  fclose(f);
  rc = dbfs_tx_commit(tx, DBFS_TX_DURABLE);
  dbfs_tx_free(tx);
  if (rc != DBFS_OK) { fprintf(stderr, "commit: %s\n", dbfs_strerror(rc)); return 1; }
  return dbfs_tx_begin("/", 0, &tx) == DBFS_ENOTDBFS ? 0 : 1;
}
C
# shellcheck disable=SC2046
cc -o "$T/prog" "$T/prog.c" $(pkg-config --cflags --libs dbfs) 2>"$T/cc.log" ||
  { cat "$T/cc.log" >&2; die "cc with pkg-config dbfs failed"; }
"$T/prog" "$MNT" "$MNT/from-c" || die "the C program failed"
[ "$(cat "$MNT/from-c")" = c ] || die "the C program's commit is not visible"

# The systemd unit is valid as installed (its man pages and programs exist).
if command -v systemd-analyze >/dev/null 2>&1; then
  cp "/usr/lib/systemd/system/dbfs@.service" "$T/dbfs@srv-data.service"
  systemd-analyze verify "$T/dbfs@srv-data.service" >"$T/verify.log" 2>&1 ||
    { cat "$T/verify.log" >&2; die "systemd-analyze verify failed"; }
fi

umount "$MNT" || die "umount failed"
wait_until 10 bash -c "! grep -qs ' $MNT ' /proc/mounts" || die "still mounted"
# The daemon releases the volume once it has flushed and closed it.
wait_until 60 flock -n "$VOL/lock" true || die "the daemon did not release the volume"
# fsck(8) takes the type from the fstab line (fuse.dbfs: fsck.fuse.dbfs)...
fsck "$VOL" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; die "fsck VOLUME failed"; }
grep -q "$VOL: clean" "$T/fsck.log" || die "fsck did not check: $(cat "$T/fsck.log")"
# ... or from -t (without the fstab line, which would filter it out).
grep -vF -e "$MARK" -e "$VOL $MNT " /etc/fstab >"$T/fstab.new" || true
cat "$T/fstab.new" >/etc/fstab
fsck -t dbfs "$VOL" >"$T/fsck.log" 2>&1 || { cat "$T/fsck.log" >&2; die "fsck -t dbfs failed"; }
grep -q "$VOL: clean" "$T/fsck.log" || die "fsck -t dbfs did not check: $(cat "$T/fsck.log")"
# Remount through the other type name, mount -t dbfs; the data is there.
mount -t dbfs "$VOL" "$MNT" || die "mount -t dbfs failed"
[ "$(cat "$MNT/hello")" = "hello from the package" ] || die "data lost"
[ "$(cat "$MNT/a")$(cat "$MNT/b")" = onetwo ] || die "the transaction's data is lost"
umount "$MNT"
wait_until 60 flock -n "$VOL/lock" true || die "the daemon did not release the volume"

log "apt-get purge dbfs"
DEBIAN_FRONTEND=noninteractive apt-get purge -y dbfs >>"$T/apt.log" 2>&1 ||
  { cat "$T/apt.log" >&2; die "purge failed"; }
installed=0
for f in /usr/bin/dbfs /usr/sbin/mount.dbfs /usr/sbin/mount.fuse.dbfs /usr/sbin/mkfs.dbfs \
    /usr/sbin/fsck.fuse.dbfs /usr/include/dbfs /usr/lib/libdbfs.so.0 \
    "/usr/lib/systemd/system/dbfs@.service" /usr/lib/python3/dist-packages/dbfs; do
  [ ! -e "$f" ] && [ ! -L "$f" ] || die "$f is left after the purge"
done
log "PASS"
