#!/bin/bash
# tar: extract real trees onto a DBFS mount and diff -r against the source,
# before and after a remount.
source "$(dirname "$0")/lib.sh"
require tar diff
dbfs_setup

SRCS=()
[ -d /usr/include/linux ] && SRCS+=(/usr/include/linux)
[ -d "${DBFS_SOURCE_DIR:-}" ] && SRCS+=("$DBFS_SOURCE_DIR")
[ ${#SRCS[@]} -gt 0 ] || skip "no source tree to archive"

i=0
for src in "${SRCS[@]}"; do
  i=$((i + 1))
  log "tar of $src"
  # Exclude build output and VCS data (they change while tests run).
  tar -C "$(dirname "$src")" --exclude='build*' --exclude=.git --exclude='.cache' \
    -cf "$T/src$i.tar" "$(basename "$src")"
  mkdir -p "$T/ref$i" "$MNT/x$i"
  tar -C "$T/ref$i" -xpf "$T/src$i.tar"
  tar -C "$MNT/x$i" -xpf "$T/src$i.tar" || die "tar extract onto the mount failed"
  diff -r --no-dereference "$T/ref$i" "$MNT/x$i" || die "extracted tree differs from $src"
  # tar's own verification: compare the archive against the extracted tree.
  (cd "$MNT/x$i" && tar -df "$T/src$i.tar") || die "tar -d found differences"
done
# A tarball created FROM the mount must equal one of the reference tree.
tar -C "$MNT/x1" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$T/from-mount.tar" .
tar -C "$T/ref1" --sort=name --mtime=@0 --owner=0 --group=0 -cf "$T/from-ref.tar" .
cmp "$T/from-mount.tar" "$T/from-ref.tar" || die "tar created from the mount differs"

log "remount"
dbfs_remount
for j in $(seq 1 $i); do
  diff -r --no-dereference "$T/ref$j" "$MNT/x$j" || die "tree $j differs after remount"
  (cd "$MNT/x$j" && tar -df "$T/src$j.tar") || die "tar -d found differences after remount"
done
dbfs_unmount
fsck_clean
dbfs_pass
