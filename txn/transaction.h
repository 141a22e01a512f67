// Transaction: one unit of atomic change over the Store — a snapshot to read
// from, plus a private write set that reads see (read-your-writes) and that
// Commit publishes under one CSN.
//
// An implicit (autocommit) transaction serves one FUSE operation. The caller
// holds the inode locks (txn/inode_locks.h) of everything it changes before
// it creates the Transaction, so the snapshot already contains the latest
// committed state of those inodes and no validation is needed — unless the
// volume is shared with other processes (mvcc::Store::shared(): a cluster
// volume mounted elsewhere too), where Commit validates the written keys and
// the caller retries a conflict (fs/filesystem.cc RetryShared).
//
// An explicit transaction (dbfs tx) holds no locks while it runs; it keeps
// its read set (when tracking is on) and is validated at commit:
// first-committer-wins on every written key, and for serializable isolation
// every key and range it read must be unchanged since its snapshot.
//
// Not thread-safe: one thread uses a Transaction at a time.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mvcc/store.h"

namespace dbfs::txn {

using mvcc::Table;

class Transaction {
 public:
  explicit Transaction(mvcc::Store* store);
  // Reads (and would commit) from `snap`, e.g. an older retained state
  // (Store::AcquireSnapshotAt): history views, diffs, restores.
  Transaction(mvcc::Store* store, mvcc::Snapshot snap);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  mvcc::Csn snapshot() const { return snap_.csn(); }
  mvcc::Store* store() const { return store_; }

  Result<std::optional<std::string>> Get(Table t, std::string_view key);
  // A read that is not part of the read set (structural reads whose
  // conflicts are handled another way, e.g. a parent directory's record).
  Result<std::optional<std::string>> GetUntracked(Table t, std::string_view key);
  // Adds `key` to the read set without reading it.
  void NoteRead(Table t, std::string_view key) {
    if (track_reads_) read_keys_[static_cast<int>(t)].emplace(key);
  }
  // `key` is merged at commit (its final value computed against the latest
  // committed state), so it takes no part in write-write validation.
  void MergeAtCommit(Table t, std::string key) { Merges().keys[static_cast<int>(t)].insert(std::move(key)); }
  void ValidateAtCommit(Table t, std::string_view key) {
    if (!merges_) return;
    auto& m = merges_->keys[static_cast<int>(t)];
    auto it = m.find(key);
    if (it != m.end()) m.erase(it);
    auto& f = merges_->fns[static_cast<int>(t)];
    auto fit = f.find(key);
    if (fit != f.end()) f.erase(fit);
  }
  // At commit, the store computes the committed value of `key` with `fn`
  // from the latest committed value (mvcc::Merge) instead of taking the
  // write set's. Implies MergeAtCommit. The key must be in the write set.
  using MergeFn = decltype(mvcc::Merge::fn);
  void SetMerge(Table t, std::string key, MergeFn fn) {
    MergeState& m = Merges();
    m.keys[static_cast<int>(t)].insert(key);
    m.fns[static_cast<int>(t)][std::move(key)] = std::move(fn);
  }
  // Scan without adding the range to the read set (reviewing a transaction's
  // changes must not make it conflict).
  Status ScanUntracked(Table t, std::string_view begin, std::string_view end,
                       const std::function<bool(std::string_view key, std::string_view value)>& fn) {
    const bool track = track_reads_;
    track_reads_ = false;
    Status st = Scan(t, begin, end, fn);
    track_reads_ = track;
    return st;
  }
  // Who commits it (the commit log); the store adds the time.
  void SetMeta(mvcc::CommitMeta meta) { meta_ = std::move(meta); }
  const mvcc::CommitMeta& meta() const { return meta_; }
  // Live keys in [begin, end), this transaction's writes included.
  Status Scan(Table t, std::string_view begin, std::string_view end,
              const std::function<bool(std::string_view key, std::string_view value)>& fn);

  void Put(Table t, std::string key, std::string value);
  void Delete(Table t, std::string key);

  Result<mvcc::DataRef> AppendData(std::string_view bytes) {
    auto r = store_->AppendData(bytes);
    if (r.ok()) data_bytes_ += bytes.size();
    return r;
  }

  // Records every key and range read from the store (serializable).
  void TrackReads() { track_reads_ = true; }
  // Tells validation that a change of a key between two values is benign
  // (not a conflict), e.g. an inode record that differs only in atime.
  using BenignChange = mvcc::BenignChange;
  void SetBenignChange(BenignChange f) { benign_ = std::move(f); }

  bool empty() const;
  size_t write_count() const;
  uint64_t data_bytes() const { return data_bytes_; }
  // Calls fn(table, key) for every key in the write set.
  void ForEachWrite(const std::function<void(Table, std::string_view)>& fn) const;

  enum class Validation { kNone, kWrites, kReadsAndWrites };
  // Publishes the write set (validated by the store atomically with the
  // commit, as `v` says). An empty transaction commits nothing. On a
  // conflict returns kConflict; conflict() then names the table and logical
  // key that changed.
  Result<mvcc::CommitResult> Commit(bool durable, Validation v = Validation::kNone);
  using ConflictKey = mvcc::KeyRef;
  const std::optional<ConflictKey>& conflict() const { return conflict_; }

 private:
  mvcc::Store* store_;
  mvcc::Snapshot snap_;

  std::map<std::string, std::optional<std::string>, std::less<>> writes_[mvcc::kNumTables];
  bool committed_ = false;
  bool track_reads_ = false;
  std::set<std::string, std::less<>> read_keys_[mvcc::kNumTables];
  std::vector<std::pair<std::string, std::string>> read_ranges_[mvcc::kNumTables];
  std::optional<ConflictKey> conflict_;
  // Keys merged at commit and their functions. Few operations merge, so it
  // is allocated by the first that does: it keeps the Transaction (one per
  // operation) small enough for malloc's per-thread cache.
  struct MergeState {
    std::set<std::string, std::less<>> keys[mvcc::kNumTables];
    std::map<std::string, MergeFn, std::less<>> fns[mvcc::kNumTables];
  };
  MergeState& Merges() {
    if (!merges_) merges_ = std::make_unique<MergeState>();
    return *merges_;
  }
  bool Merged(int t, std::string_view key) const { return merges_ && merges_->keys[t].count(key) > 0; }
  std::unique_ptr<MergeState> merges_;
  BenignChange benign_;
  uint64_t data_bytes_ = 0;
  mvcc::CommitMeta meta_;
};

}  // namespace dbfs::txn
