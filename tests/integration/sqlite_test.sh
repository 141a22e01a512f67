#!/bin/bash
# SQLite on a DBFS mount: 10k rows in transactions, integrity_check, in
# rollback-journal and WAL modes, and again after a remount.
source "$(dirname "$0")/lib.sh"
require sqlite3
dbfs_setup

fill() { # fill DB MODE
  local db=$1 mode=$2
  {
    echo "PRAGMA journal_mode=$mode;"
    echo "PRAGMA synchronous=FULL;"
    echo "CREATE TABLE t(id INTEGER PRIMARY KEY, k INTEGER, v BLOB);"
    echo "CREATE INDEX t_k ON t(k);"
    for b in $(seq 0 9); do
      echo "BEGIN;"
      echo "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 950)"
      echo "  INSERT INTO t(k, v) SELECT abs(random()) % 100000, randomblob(200 + x % 300) FROM c;"
      echo "COMMIT;"
    done
    # Many small autocommit transactions (each one syncs).
    for i in $(seq 1 500); do
      echo "INSERT INTO t(k, v) VALUES ($i, randomblob(100));"
    done
    echo "BEGIN; UPDATE t SET v = randomblob(50) WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0; COMMIT;"
    echo "BEGIN; INSERT INTO t(k, v) SELECT k, v FROM t WHERE id % 7 = 1 LIMIT 1428; COMMIT;"
    echo "BEGIN; INSERT INTO t(k, v) VALUES (-1, 'rolled back'); ROLLBACK;"
  } | sqlite3 "$db" >/dev/null || die "sqlite3 ($mode) failed"
}

check() { # check DB
  local db=$1 out
  out=$(sqlite3 "$db" "PRAGMA integrity_check;") || die "integrity_check failed to run on $db"
  [ "$out" = ok ] || die "integrity_check on $db: $out"
  local n
  n=$(sqlite3 "$db" "SELECT count(*) FROM t;")
  [ "$n" = 10000 ] || die "$db has $n rows, want 10000"
  [ "$(sqlite3 "$db" "SELECT count(*) FROM t WHERE k = -1;")" = 0 ] || die "rolled back row present"
}

for mode in DELETE WAL; do
  log "journal_mode=$mode"
  db=$MNT/test-$mode.db
  fill "$db" "$mode"
  check "$db"
  [ "$(sqlite3 "$db" 'PRAGMA journal_mode;')" = "$(echo "$mode" | tr A-Z a-z)" ] ||
    die "journal_mode is not $mode"
done
sqlite3 "$MNT/test-DELETE.db" "VACUUM;" || die "VACUUM failed"
check "$MNT/test-DELETE.db"

log "remount"
dbfs_remount
check "$MNT/test-DELETE.db"
check "$MNT/test-WAL.db"
sqlite3 "$MNT/test-WAL.db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null || die "checkpoint failed"
check "$MNT/test-WAL.db"
dbfs_unmount
fsck_clean
dbfs_pass
