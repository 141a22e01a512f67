// Cursor: ordered iteration over one table inside a ReadTxn or WriteTxn.
//
// Keys are visited in memcmp order (see key_codec.h for why keys are
// big-endian). A cursor starts unpositioned (Valid() == false); Seek*,
// Next and Prev return whether it now points at a record.
//
//   DBFS_ASSIGN_OR_RETURN(auto c, txn->NewCursor(table));
//   DBFS_ASSIGN_OR_RETURN(bool ok, c->Seek(prefix));
//   while (ok && c->key().starts_with(prefix)) {
//     ... c->key(), c->value() ...
//     DBFS_ASSIGN_OR_RETURN(ok, c->Next());
//   }
//
// Lifetime: destroy a cursor before its transaction. (If the transaction ends
// first, the cursor is closed with it and every later call returns an error;
// destroying it afterwards is still safe.) Copying is deleted. A cursor is
// used by one thread at a time, like its transaction.
//
// Views returned by key() and value() point into LMDB's map: they stay valid
// until the cursor moves, the transaction ends, or (write transactions) the
// transaction modifies the database.
#pragma once

#include <memory>
#include <string_view>

#include "kvstore/status.h"
#include "kvstore/txn_state.h"

namespace dbfs::kv {

class ReadTxn;
class WriteTxn;

class Cursor {
 public:
  ~Cursor();
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;

  // Positions at the first key >= `key` (MDB_SET_RANGE). Returns false (and
  // Valid() becomes false) when there is none. Seek("") == SeekFirst().
  Result<bool> Seek(std::string_view key);
  Result<bool> SeekFirst();
  Result<bool> SeekLast();
  // Moves to the next / previous key. On an unpositioned cursor (Valid() is
  // false: never positioned, or moved off either end) they return false and
  // leave it unpositioned; re-position with Seek*.
  Result<bool> Next();
  Result<bool> Prev();

  bool Valid() const { return valid_; }
  std::string_view key() const;    // REQUIRES: Valid()
  std::string_view value() const;  // REQUIRES: Valid()

  // Write cursors only: deletes the current record; the cursor then points at
  // the next record (Valid() becomes false when the deleted one was the last).
  // REQUIRES: Valid(). Returns Invalid on a read cursor or unpositioned cursor.
  Status DeleteCurrent();

  unsigned dbi() const { return dbi_; }

 private:
  friend class ReadTxn;
  friend class WriteTxn;
  friend struct internal::TxnState;

  // Opens an LMDB cursor on `dbi` in `txn` and registers it there.
  static Result<std::unique_ptr<Cursor>> Open(internal::TxnState* txn, unsigned dbi);
  Cursor(internal::TxnState* txn, MDB_cursor* cursor, unsigned dbi)
      : txn_(txn), cursor_(cursor), dbi_(dbi) {}

  // Runs one mdb_cursor_get with `op` (an MDB_cursor_op) and records the
  // resulting position. `key` is the SET_RANGE key, if any.
  Result<bool> Move(int op, std::string_view key);
  Status CheckUsable() const;
  // Called by the owning transaction when it ends: closes the LMDB cursor.
  void Detach();
  // Forgets the position (the table was cleared under the cursor).
  void Unposition();

  internal::TxnState* txn_;  // null once the transaction has ended
  MDB_cursor* cursor_;       // null once closed
  const unsigned dbi_;
  bool valid_ = false;
  std::string_view key_;
  std::string_view value_;
};

}  // namespace dbfs::kv
