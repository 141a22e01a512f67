// libdbfs for C++: a header-only wrapper of dbfs.h (link with
// `pkg-config --cflags --libs dbfs`).
//
//   dbfs::RunTransaction("/mnt/dbfs", [] {
//     std::ofstream("/mnt/dbfs/a") << 1;
//     std::ofstream("/mnt/dbfs/b") << 2;
//   });                              // retried on conflict, up to 5 attempts
//
//   dbfs::Transaction tx("/mnt/dbfs");   // binds this process (and children)
//   ...;
//   tx.Commit();                         // throws dbfs::Conflict if it lost
//   // a Transaction destroyed while open is aborted.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

#include "dbfs.h"

namespace dbfs {

// Every failure: code() is one of DBFS_E* (dbfs.h).
class Error : public std::runtime_error {
 public:
  Error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }
  // Whether running the transaction again may succeed.
  bool retryable() const noexcept { return code_ == DBFS_ECONFLICT || code_ == DBFS_EDEADLOCK; }

 private:
  int code_;
};

// The transaction lost a conflict (or was a deadlock victim): nothing it did
// remains; run it again.
class Conflict : public Error {
 public:
  using Error::Error;
};

namespace detail {
[[noreturn]] inline void Throw(int rc, const std::string& context) {
  std::string what = context + ": " + dbfs_strerror(rc);
  if (rc == DBFS_ECONFLICT || rc == DBFS_EDEADLOCK) throw Conflict(rc, what);
  throw Error(rc, what);
}
}  // namespace detail

struct TxOptions {
  bool snapshot = false;  // snapshot isolation (default: serializable)
  bool lock = false;      // pessimistic locking
};

class Transaction {
 public:
  // Begins a transaction on the DBFS mount containing `path`, bound to the
  // calling process and the children it starts.
  explicit Transaction(const std::string& path, TxOptions o = {}) {
    const unsigned flags = (o.snapshot ? DBFS_TX_SNAPSHOT : 0u) | (o.lock ? DBFS_TX_LOCK : 0u);
    if (int rc = dbfs_tx_begin(path.c_str(), flags, &tx_); rc != DBFS_OK) {
      detail::Throw(rc, "dbfs: cannot begin a transaction on " + path);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  Transaction(Transaction&& o) noexcept
      : tx_(std::exchange(o.tx_, nullptr)), open_(std::exchange(o.open_, false)) {}
  ~Transaction() {
    if (open_) dbfs_tx_abort(tx_);  // ignored: rolling back is all that is left
    dbfs_tx_free(tx_);
  }

  std::string id() const { return dbfs_tx_id(tx_); }
  bool open() const { return open_; }

  // Commits; returns the commit's CSN. Throws Conflict if the transaction
  // lost (it is rolled back), Error otherwise.
  std::string Commit(bool durable = false) {
    open_ = false;
    const int rc = dbfs_tx_commit(tx_, durable ? DBFS_TX_DURABLE : 0u);
    if (rc != DBFS_OK) {
      detail::Throw(rc, std::string("dbfs: commit of transaction ") + dbfs_tx_id(tx_) + " (" +
                            dbfs_tx_detail(tx_) + ")");
    }
    return dbfs_tx_detail(tx_);
  }
  void Abort() {
    open_ = false;
    const int rc = dbfs_tx_abort(tx_);
    if (rc != DBFS_OK && rc != DBFS_EDEADLOCK) detail::Throw(rc, "dbfs: abort");
  }

 private:
  dbfs_tx* tx_ = nullptr;
  bool open_ = true;
};

// Runs fn() inside a transaction on the mount containing `path` and commits;
// runs it again after a conflict, up to `attempts` times in all. An exception
// from fn aborts the transaction and propagates. The last Conflict
// propagates when every attempt lost.
template <typename Fn>
void RunTransaction(const std::string& path, Fn&& fn, int attempts = 5, TxOptions o = {}) {
  for (int attempt = 1;; ++attempt) {
    Transaction tx(path, o);
    fn();
    try {
      tx.Commit();
      return;
    } catch (const Conflict&) {
      if (attempt >= attempts) throw;
    }
  }
}

}  // namespace dbfs
