#include "kvstore/cursor.h"

#include <lmdb.h>

#include <cassert>
#include <string>

namespace dbfs::kv {
namespace {

MDB_val ToVal(std::string_view s) {
  // LMDB never writes through a key passed to mdb_cursor_get.
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

std::string_view FromVal(const MDB_val& v) {
  return std::string_view(static_cast<const char*>(v.mv_data), v.mv_size);
}

}  // namespace

Result<std::unique_ptr<Cursor>> Cursor::Open(internal::TxnState* txn, unsigned dbi) {
  DBFS_RETURN_IF_ERROR(internal::CheckDbi(dbi));
  if (txn->map_full) return internal::MapFullStatus();
  MDB_cursor* c = nullptr;
  if (!txn->write) {
    // Reuse a parked read cursor handle of this table (see TxnState).
    c = txn->TakeIdleCursor(dbi);
    if (c != nullptr && mdb_cursor_renew(txn->txn, c) != MDB_SUCCESS) {
      mdb_cursor_close(c);  // cannot happen for a valid read txn; open afresh
      c = nullptr;
    }
  }
  if (c == nullptr) {
    DBFS_RETURN_IF_ERROR(txn->Check(mdb_cursor_open(txn->txn, dbi, &c), "mdb_cursor_open"));
  }
  std::unique_ptr<Cursor> cursor(new Cursor(txn, c, dbi));
  txn->cursors.push_back(cursor.get());
  return cursor;
}

Cursor::~Cursor() {
  // cursor_ is non-null only while txn_ is (Detach clears both).
  if (txn_ != nullptr) {
    txn_->Unregister(this);
    txn_->ReleaseCursorHandle(cursor_);
  }
}

void Cursor::Detach() {
  if (cursor_ != nullptr) txn_->ReleaseCursorHandle(cursor_);
  cursor_ = nullptr;
  txn_ = nullptr;
  Unposition();
}

void Cursor::Unposition() {
  valid_ = false;
  key_ = {};
  value_ = {};
}

Status Cursor::CheckUsable() const {
  if (txn_ == nullptr) return Status::Invalid("kvstore: cursor used after its transaction ended");
  // A write txn that hit MDB_MAP_FULL is dead; Env::Write will rerun it.
  if (txn_->map_full) return internal::MapFullStatus();
  return Status::Ok();
}

Result<bool> Cursor::Move(int op, std::string_view key) {
  DBFS_RETURN_IF_ERROR(CheckUsable());
  MDB_val k = ToVal(key);
  MDB_val v{0, nullptr};
  const int rc = mdb_cursor_get(cursor_, &k, &v, static_cast<MDB_cursor_op>(op));
  if (rc != MDB_SUCCESS) {
    Unposition();
    if (rc == MDB_NOTFOUND) return false;
    return txn_->Check(rc, "mdb_cursor_get");
  }
  valid_ = true;
  key_ = FromVal(k);
  value_ = FromVal(v);
  return true;
}

Result<bool> Cursor::Seek(std::string_view key) {
  DBFS_RETURN_IF_ERROR(CheckUsable());
  if (key.empty()) return SeekFirst();  // LMDB rejects zero-length keys
  const size_t max_key = txn_->max_key_size;
  if (key.size() <= max_key) return Move(MDB_SET_RANGE, key);
  // No stored key is longer than the limit, so the only stored key in
  // [prefix, key) is prefix itself (a proper prefix of `key` sorts before it).
  const std::string_view prefix = key.substr(0, max_key);
  DBFS_ASSIGN_OR_RETURN(bool found, Move(MDB_SET_RANGE, prefix));
  if (found && key_ == prefix) return Next();
  return found;
}

Result<bool> Cursor::SeekFirst() { return Move(MDB_FIRST, {}); }
Result<bool> Cursor::SeekLast() { return Move(MDB_LAST, {}); }

Result<bool> Cursor::Next() {
  DBFS_RETURN_IF_ERROR(CheckUsable());
  if (!valid_) return false;
  return Move(MDB_NEXT, {});
}

Result<bool> Cursor::Prev() {
  DBFS_RETURN_IF_ERROR(CheckUsable());
  if (!valid_) return false;
  return Move(MDB_PREV, {});
}

std::string_view Cursor::key() const {
  assert(valid_);
  return key_;
}

std::string_view Cursor::value() const {
  assert(valid_);
  return value_;
}

Status Cursor::DeleteCurrent() {
  DBFS_RETURN_IF_ERROR(CheckUsable());
  if (!txn_->write) return Status::Invalid("kvstore: DeleteCurrent on a read-only cursor");
  if (!valid_) return Status::Invalid("kvstore: DeleteCurrent on an unpositioned cursor");
  // Copy the key: it points into a page the delete rewrites.
  const std::string deleted(key_);
  const int rc = mdb_cursor_del(cursor_, 0);
  if (rc != MDB_SUCCESS) {
    Unposition();
    return txn_->Check(rc, "mdb_cursor_del");
  }
  // Re-position explicitly at the successor instead of relying on LMDB's
  // post-delete cursor state (which has had version-specific quirks).
  return Seek(deleted).status();
}

}  // namespace dbfs::kv
