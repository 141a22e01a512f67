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
  // Read txns only: LMDB handles of ended read cursors, kept for
  // mdb_cursor_renew (LMDB lets a read cursor handle move to any later read
  // txn on the same table, sparing the malloc/free of open/close). They
  // outlive a reset of the txn and go with it to the next BeginRead that
  // reuses it; CloseIdleCursors closes them when the ReadTxn is freed.
  std::vector<MDB_cursor*> idle_cursors;
  static constexpr size_t kMaxIdleCursors = 4;

  // MdbStatus(rc, what), noting MDB_MAP_FULL in `map_full`.
  Status Check(int rc, std::string_view what);
  // Detaches every open cursor (its LMDB handle parked or closed). Called
  // before commit/abort/reset.
  void CloseCursors();
  void Unregister(Cursor* c);
  // The LMDB handle of a cursor that is done: parked in idle_cursors (read
  // txns, while there is room) or closed.
  void ReleaseCursorHandle(MDB_cursor* c);
  // A parked handle on `dbi`, removed from idle_cursors, or nullptr.
  MDB_cursor* TakeIdleCursor(unsigned dbi);
  void CloseIdleCursors();
};

// Rejects Table{} and other handles no OpenTable() returned (dbi 0 is LMDB's
// free list, dbi 1 the main database holding the table names).
Status CheckDbi(unsigned dbi);

}  // namespace internal
}  // namespace dbfs::kv
