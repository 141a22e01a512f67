#!/usr/bin/env bash
# Usage: tools/check-layering.sh [ROOT]
#
# Checks that the layers of the source tree at ROOT (default: this
# repository) only include downwards (docs/ARCHITECTURE.md §1):
#
#   kvstore <- wal <- mvcc <- txn <- fs <- {fuse, elle} <- tools
#
#   * a folder includes only itself and the layers below it ("layer/..."):
#     fs/ and below never include fuse/ or elle/; elle/ never includes fuse/
#     (nor fuse/ elle/); mvcc/, wal/ and kvstore/ never include a layer above;
#   * no FUSE header (<fuse...>) in fs/ or below, nor in elle/;
#   * no file outside kvstore/ includes lmdb.h.
#
# Prints every violation as FILE:LINE: reason and exits 1 if there is any.
set -euo pipefail
ROOT=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$ROOT"

declare -A allowed=(
  [kvstore]="kvstore"
  [wal]="wal kvstore"
  [mvcc]="mvcc wal kvstore"
  [txn]="txn mvcc wal kvstore"
  [fs]="fs txn mvcc wal kvstore"
  [fuse]="fuse fs txn mvcc wal kvstore"
  [elle]="elle fs txn mvcc wal kvstore"
)
layers="kvstore wal mvcc txn fs fuse elle tools"
no_fuse_headers="kvstore wal mvcc txn fs elle"

bad=0
report() {
  echo "$1: $2"
  bad=1
}

for dir in "${!allowed[@]}"; do
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do
    n=0
    while IFS= read -r line; do
      n=$((n + 1))
      [[ "$line" =~ ^[[:space:]]*#[[:space:]]*include[[:space:]]*\"([a-z_0-9]+)/ ]] || continue
      target=${BASH_REMATCH[1]}
      # Only the project's layers are ruled here (not e.g. "spdlog/...").
      [[ " $layers " == *" $target "* ]] || continue
      [[ " ${allowed[$dir]} " == *" $target "* ]] ||
        report "$f:$n" "$dir/ must not include $target/ (layers point down only)"
    done <"$f"
  done < <(find "$dir" -type f \( -name '*.h' -o -name '*.cc' \) -print0)
done

for dir in $no_fuse_headers; do
  [ -d "$dir" ] || continue
  while IFS=: read -r f n _; do
    report "$f:$n" "$f is below the FUSE adapter but includes a FUSE header"
  done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*<fuse' --include='*.h' --include='*.cc' "$dir" || true)
done

while IFS=: read -r f n _; do
  case "$f" in
    kvstore/* | ./kvstore/*) ;;
    *) report "$f:$n" "only kvstore/ may include lmdb.h" ;;
  esac
done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]lmdb\.h[>"]' \
           --include='*.h' --include='*.cc' --include='*.c' \
           --exclude-dir=build --exclude-dir='build-*' --exclude-dir=third_party . | sed 's#^\./##' || true)

if [ "$bad" = 0 ]; then
  echo "layering: ok"
fi
exit "$bad"
