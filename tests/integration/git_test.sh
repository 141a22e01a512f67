#!/bin/bash
# git on a DBFS mount: clone a local repo (local and pack protocol), fsck,
# commit, gc, and fsck again after a remount.
source "$(dirname "$0")/lib.sh"
require git
dbfs_setup

export HOME=$T/home GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
git config --global user.name "DBFS Test"
git config --global user.email "test@dbfs.invalid"
git config --global init.defaultBranch main
git config --global safe.directory '*'
git config --global gc.auto 0

# A source repository outside the mount with some history.
SRC=$T/src
git init -q "$SRC"
cd "$SRC"
for i in $(seq 1 25); do
  mkdir -p "dir$((i % 4))"
  seq 1 $((i * 200)) | sed "s/^/line $i: /" >"dir$((i % 4))/file$i.txt"
  head -c $((i * 3000)) /dev/urandom >"dir$((i % 4))/blob$i.bin"
  [ $((i % 5)) = 0 ] && git rm -q "dir$(((i - 1) % 4))/file$((i - 1)).txt"
  git add -A
  git commit -q -m "commit $i"
done
git checkout -q -b side
echo side >side.txt && git add side.txt && git commit -q -m side
git checkout -q main
git tag v1
NCOMMITS=$(git rev-list --all | wc -l)

log "clone (local) onto the mount"
git clone -q "$SRC" "$MNT/clone1"
log "clone (pack protocol) onto the mount"
git clone -q --no-local "file://$SRC" "$MNT/clone2"
for c in clone1 clone2; do
  git -C "$MNT/$c" fsck --full --strict || die "git fsck --full failed in $c"
  [ "$(git -C "$MNT/$c" rev-list --all | wc -l)" = "$NCOMMITS" ] || die "$c: wrong commit count"
  [ -z "$(git -C "$MNT/$c" status --porcelain)" ] || die "$c: working tree not clean after clone"
  diff -r -x .git "$SRC" "$MNT/$c" || die "$c: checkout differs from source"
done

log "commit on the mount"
cd "$MNT/clone2"
for i in $(seq 1 10); do
  head -c 50000 /dev/urandom >"new$i.bin"
  echo "change $i" >>dir1/file1.txt
  git add -A
  git commit -q -m "on dbfs $i"
done
git mv dir2 dir2-renamed
git commit -q -m "rename a directory"
git branch -q feature HEAD~3
log "git gc"
git gc -q --prune=now
git fsck --full --strict || die "git fsck --full failed after gc"
[ -z "$(git status --porcelain)" ] || die "working tree not clean after gc"
HEAD=$(git rev-parse HEAD)
cd /

log "remount and check again"
dbfs_remount
git -C "$MNT/clone2" fsck --full --strict || die "git fsck --full failed after remount"
[ "$(git -C "$MNT/clone2" rev-parse HEAD)" = "$HEAD" ] || die "HEAD changed across remount"
[ -z "$(git -C "$MNT/clone2" status --porcelain)" ] || die "working tree dirty after remount"
history=$(git -C "$MNT/clone2" log --oneline)
grep -q "rename a directory" <<<"$history" || die "history lost"
# Clone back out of the mount.
git clone -q "$MNT/clone2" "$T/back"
git -C "$T/back" fsck --full || die "fsck of the clone taken from the mount failed"
dbfs_unmount
fsck_clean
dbfs_pass
