#include "kvstore/txn_state.h"

#include <lmdb.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "kvstore/cursor.h"

namespace dbfs::kv::internal {

Status MdbStatus(int rc, std::string_view what) {
  if (rc == MDB_SUCCESS) return Status::Ok();
  std::string msg = std::string("lmdb: ") + std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case ENOSPC:
    case EDQUOT:
      return Status::NoSpace(std::move(msg));
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
      return Status::Corruption(std::move(msg) + " (the metadata store is damaged; run fsck.dbfs)");
    case MDB_BAD_VALSIZE:
      return Status::Invalid(std::move(msg));
    case MDB_READERS_FULL:
      return Status::IOError(std::move(msg), EAGAIN);
    case MDB_MAP_FULL:
      return MapFullStatus();
    default:
      // Positive codes are errnos: keep them so the FUSE boundary reports
      // the real cause (EACCES, EROFS, ...). MDB_* codes are negative.
      return Status::IOError(std::move(msg), rc > 0 ? rc : EIO);
  }
}

Status MapFullStatus() {
  return Status::NoSpace("lmdb: map full (the write is rerun with a larger map)");
}

Status TxnState::Check(int rc, std::string_view what) {
  if (rc == MDB_MAP_FULL) map_full = true;
  return MdbStatus(rc, what);
}

void TxnState::CloseCursors() {
  for (Cursor* c : cursors) c->Detach();
  cursors.clear();
}

void TxnState::ReleaseCursorHandle(MDB_cursor* c) {
  if (!write && idle_cursors.size() < kMaxIdleCursors) {
    idle_cursors.push_back(c);
  } else {
    mdb_cursor_close(c);
  }
}

MDB_cursor* TxnState::TakeIdleCursor(unsigned dbi) {
  for (auto it = idle_cursors.begin(); it != idle_cursors.end(); ++it) {
    if (mdb_cursor_dbi(*it) == dbi) {
      MDB_cursor* c = *it;
      *it = idle_cursors.back();
      idle_cursors.pop_back();
      return c;
    }
  }
  return nullptr;
}

void TxnState::CloseIdleCursors() {
  // Read cursor handles may be closed after their txn ended (LMDB tracks
  // only write-txn cursors), so the order against the txn does not matter.
  for (MDB_cursor* c : idle_cursors) mdb_cursor_close(c);
  idle_cursors.clear();
}

void TxnState::Unregister(Cursor* c) {
  auto it = std::find(cursors.begin(), cursors.end(), c);
  if (it != cursors.end()) {
    *it = cursors.back();
    cursors.pop_back();
  }
}

Status CheckDbi(unsigned dbi) {
  // FREE_DBI (0) and MAIN_DBI (1) are LMDB's own; OpenTable never returns them.
  if (dbi < 2) return Status::Invalid("kvstore: table was not opened with Env::OpenTable");
  return Status::Ok();
}

}  // namespace dbfs::kv::internal
