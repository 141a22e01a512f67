#!/usr/bin/env bash
# The layering check (tools/check-layering.sh) passes on the tree, and fails
# on a copy of it with each kind of violation planted in turn.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CHECK="$REPO/tools/check-layering.sh"

"$CHECK" "$REPO"

tmp=$(mktemp -d /tmp/dbfs-layering-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
for d in kvstore wal mvcc txn fs fuse elle tools; do
  mkdir -p "$tmp/$d"
  # Headers and sources only: what the check reads.
  (cd "$REPO" && find "$d" -type f \( -name '*.h' -o -name '*.cc' \) -exec cp --parents {} "$tmp" \;)
done
"$CHECK" "$tmp" >/dev/null || { echo "the copy of the tree should pass"; exit 1; }

expect_violation() {  # FILE LINE-TO-ADD WHAT
  local file=$1 line=$2 what=$3
  cp "$tmp/$file" "$tmp/$file.orig"
  printf '%s\n' "$line" >>"$tmp/$file"
  if "$CHECK" "$tmp" >"$tmp/out" 2>&1; then
    echo "not caught: $what"
    exit 1
  fi
  grep -q "^$file:" "$tmp/out" || { echo "wrong place reported for: $what"; cat "$tmp/out"; exit 1; }
  mv "$tmp/$file.orig" "$tmp/$file"
}
expect_violation fs/engine.h '#include "fuse/ll_context.h"' "fs/ including fuse/"
expect_violation fs/data.cc '#include <fuse_lowlevel.h>' "fs/ including a FUSE header"
expect_violation txn/transaction.h '#include "fs/filesystem.h"' "txn/ including fs/"
expect_violation elle/server.cc '#include "fuse/control.h"' "elle/ including fuse/"
expect_violation fuse/control.cc '#include "elle/server.h"' "fuse/ including elle/"
expect_violation mvcc/store.h '#include "txn/transaction.h"' "mvcc/ including a layer above"
expect_violation wal/writer.h '#include "mvcc/keys.h"' "wal/ including a layer above"
expect_violation kvstore/status.h '#include "wal/writer.h"' "kvstore/ including a layer above"
expect_violation tools/lib/fsck.cc '#include <lmdb.h>' "lmdb.h outside kvstore/"
echo "layering check: every planted violation caught"
