// Transaction: one unit of atomic change over the Store — a snapshot to read
// from, plus a private write set that reads see (read-your-writes) and that
// Commit publishes under one CSN.
//
// An implicit (autocommit) transaction serves one FUSE operation. The caller
// holds the inode locks (txn/inode_locks.h) of everything it changes before
// it creates the Transaction, so the snapshot already contains the latest
// committed state of those inodes and no validation is needed.
//
// Not thread-safe: one thread uses a Transaction at a time.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "mvcc/store.h"

namespace dbfs::txn {

using mvcc::Table;

class Transaction {
 public:
  explicit Transaction(mvcc::Store* store);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  mvcc::Csn snapshot() const { return snap_.csn(); }
  mvcc::Store* store() const { return store_; }

  Result<std::optional<std::string>> Get(Table t, std::string_view key);
  // Live keys in [begin, end), this transaction's writes included.
  Status Scan(Table t, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);

  void Put(Table t, std::string key, std::string value);
  void Delete(Table t, std::string key);

  Result<mvcc::DataRef> AppendData(std::string_view bytes) { return store_->AppendData(bytes); }

  bool empty() const;
  // Publishes the write set. An empty transaction commits nothing.
  Result<mvcc::CommitResult> Commit(bool durable);

 private:
  mvcc::Store* store_;
  mvcc::Snapshot snap_;
  std::map<std::string, std::optional<std::string>, std::less<>> writes_[mvcc::kNumTables];
  bool committed_ = false;
};

}  // namespace dbfs::txn
