// Internal to kvstore/: what a ReadTxn or WriteTxn shares with its cursors,
// and the one place an LMDB return code becomes a Status.
//
// This header deliberately does not include <lmdb.h>; only kvstore/*.cc do.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

struct MDB_txn;
struct MDB_cursor;

namespace dbfs::kv {

class Cursor;

// LMDB's compile-time limit on key length (mdb_env_get_maxkeysize() of a
// default build). Longer keys can never be stored.
inline constexpr size_t kMaxKeySize = 511;

namespace internal {

// Converts an LMDB return code (an MDB_* code or an errno) into a Status.
// `what` names the failed call. ENOSPC/EDQUOT -> kNoSpace; damage reported
// by LMDB -> kCorruption; anything else -> kIOError carrying the errno.
// rc == 0 -> Ok.
Status MdbStatus(int rc, std::string_view what);

// The status an operation returns once its write transaction has hit
// MDB_MAP_FULL; Env::Write then grows the map and reruns the body.
Status MapFullStatus();

// One open LMDB transaction and the cursors handed out from it. Owned by a
// ReadTxn or WriteTxn (never moved: cursors point at it). Used by one thread
// at a time, like its owner.
struct TxnState {
  MDB_txn* txn = nullptr;
  bool write = false;
  // A call in this write txn returned MDB_MAP_FULL: the txn is dead (LMDB
  // fails every later call) and Env::Write must grow the map and rerun.
  bool map_full = false;
  size_t max_key_size = kMaxKeySize;
  std::vector<Cursor*> cursors;  // open cursors, detached when the txn ends

  // MdbStatus(rc, what), noting MDB_MAP_FULL in `map_full`.
  Status Check(int rc, std::string_view what);
  // Closes and detaches every open cursor. Called before commit/abort.
  void CloseCursors();
  void Unregister(Cursor* c);
};

// Rejects Table{} and other handles no OpenTable() returned (dbi 0 is LMDB's
// free list, dbi 1 the main database holding the table names).
Status CheckDbi(unsigned dbi);

}  // namespace internal
}  // namespace dbfs::kv
