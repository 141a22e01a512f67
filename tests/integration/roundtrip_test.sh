#!/bin/bash
# The new-user round trip: copy a source tree in, build it there, unmount,
# mount again: everything identical.
source "$(dirname "$0")/lib.sh"
require make cc diff md5sum
dbfs_setup

SRC=$T/src
mkdir -p "$SRC"
gen_c_project "$SRC/cproj" 40
if [ -d "${DBFS_SOURCE_DIR:-}" ]; then
  # The repository's own sources, without build output and VCS data.
  tar -C "$DBFS_SOURCE_DIR" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$SRC" -xf - ||
    die "could not snapshot $DBFS_SOURCE_DIR"
  mv "$SRC/cproj" "$SRC/zz-cproj"
  CP=zz-cproj
else
  CP=cproj
fi

log "copy in"
cp -a "$SRC" "$MNT/tree"
diff -r --no-dereference "$SRC" "$MNT/tree" || die "copy differs from the source"

log "build on the mount"
make -C "$MNT/tree/$CP" -j2 >>"$LOG" 2>&1 || die "build failed"
want=$(c_project_expected 40)
[ "$("$MNT/tree/$CP/prog")" = "$want" ] || die "program output wrong"

tree_manifest "$MNT/tree" >"$T/manifest.before"
log "unmount, mount"
dbfs_remount
tree_manifest "$MNT/tree" >"$T/manifest.after"
diff "$T/manifest.before" "$T/manifest.after" || die "tree changed across unmount/mount"
# The sources are still identical to the originals (build outputs aside).
diff -r --no-dereference -x obj -x prog "$SRC" "$MNT/tree" || die "sources differ after remount"
[ "$("$MNT/tree/$CP/prog")" = "$want" ] || die "program output wrong after remount"
make -C "$MNT/tree/$CP" -q || die "make -q after remount: not up to date"
dbfs_unmount
fsck_clean
dbfs_pass
