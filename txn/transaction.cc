#include "txn/transaction.h"

namespace dbfs::txn {

Transaction::Transaction(mvcc::Store* store) : store_(store), snap_(store->AcquireSnapshot()) {}

Result<std::optional<std::string>> Transaction::Get(Table t, std::string_view key) {
  const auto& w = writes_[static_cast<int>(t)];
  auto it = w.find(key);
  if (it != w.end()) return it->second;
  if (track_reads_) read_keys_[static_cast<int>(t)].emplace(key);
  return store_->Get(snap_.csn(), t, key);
}

Result<std::optional<std::string>> Transaction::GetUntracked(Table t, std::string_view key) {
  const auto& w = writes_[static_cast<int>(t)];
  auto it = w.find(key);
  if (it != w.end()) return it->second;
  return store_->Get(snap_.csn(), t, key);
}

Status Transaction::Scan(Table t, std::string_view begin, std::string_view end,
                         const std::function<bool(std::string_view, std::string_view)>& fn) {
  if (track_reads_) read_ranges_[static_cast<int>(t)].emplace_back(begin, end);
  const auto& w = writes_[static_cast<int>(t)];
  auto wit = w.lower_bound(begin);
  auto wend = end.empty() ? w.end() : w.lower_bound(end);
  if (wit == wend) return store_->Scan(snap_.csn(), t, begin, end, fn);
  // Merge our own writes into the committed view.
  bool stopped = false;
  Status st = store_->Scan(snap_.csn(), t, begin, end, [&](std::string_view k, std::string_view v) {
    while (wit != wend && std::string_view(wit->first) < k) {
      if (wit->second && !fn(wit->first, *wit->second)) {
        stopped = true;
        return false;
      }
      ++wit;
    }
    if (wit != wend && wit->first == k) {
      bool go = !wit->second || fn(wit->first, *wit->second);
      ++wit;
      if (!go) stopped = true;
      return go;
    }
    if (!fn(k, v)) {
      stopped = true;
      return false;
    }
    return true;
  });
  DBFS_RETURN_IF_ERROR(st);
  if (stopped) return Status::Ok();
  for (; wit != wend; ++wit) {
    if (wit->second && !fn(wit->first, *wit->second)) break;
  }
  return Status::Ok();
}

void Transaction::Put(Table t, std::string key, std::string value) {
  writes_[static_cast<int>(t)][std::move(key)] = std::move(value);
}

void Transaction::Delete(Table t, std::string key) {
  writes_[static_cast<int>(t)][std::move(key)] = std::nullopt;
}

bool Transaction::empty() const {
  for (const auto& w : writes_) {
    if (!w.empty()) return false;
  }
  return true;
}

size_t Transaction::write_count() const {
  size_t n = 0;
  for (const auto& w : writes_) n += w.size();
  return n;
}

void Transaction::ForEachWrite(const std::function<void(Table, std::string_view)>& fn) const {
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (const auto& kv : writes_[i]) fn(static_cast<Table>(i), kv.first);
  }
}

// Runs under the store's commit mutex: nothing can commit in between.
Status Transaction::Validate(Validation v) {
  const mvcc::Csn snap = snap_.csn();
  auto changed = [&](int i, std::string_view key) -> Result<bool> {
    DBFS_ASSIGN_OR_RETURN(mvcc::Csn newest, store_->NewestCsn(static_cast<Table>(i), key));
    if (newest > snap && benign_) {
      DBFS_ASSIGN_OR_RETURN(auto before, store_->Get(snap, static_cast<Table>(i), key));
      DBFS_ASSIGN_OR_RETURN(auto after, store_->Get(mvcc::kMaxCsn, static_cast<Table>(i), key));
      if (before && after && benign_(static_cast<Table>(i), *before, *after)) return false;
    }
    if (newest > snap) {
      conflict_ = ConflictKey{static_cast<Table>(i), std::string(key)};
      return true;
    }
    return false;
  };
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (const auto& kv : writes_[i]) {
      if (merged_[i].count(kv.first)) continue;
      DBFS_ASSIGN_OR_RETURN(bool c, changed(i, kv.first));
      if (c) return Status::Conflict("write-write conflict");
    }
  }
  if (v != Validation::kReadsAndWrites) return Status::Ok();
  // Ranges first: a phantom names the entry that appeared, which is a more
  // useful message than the directory record that changed with it.
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (const auto& [b, e] : read_ranges_[i]) {
      std::string from = b;
      for (;;) {
        DBFS_ASSIGN_OR_RETURN(auto k, store_->ChangedSince(static_cast<Table>(i), from, e, snap));
        if (!k) break;
        // A benign change of a key that existed before and after (a checkpoint
        // moving file data) is not a phantom; look past it.
        DBFS_ASSIGN_OR_RETURN(bool c, changed(i, *k));
        if (c) return Status::Conflict("phantom: a range read by the transaction changed");
        from = *k;
        from.push_back('\0');
      }
    }
  }
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (const auto& key : read_keys_[i]) {
      DBFS_ASSIGN_OR_RETURN(bool c, changed(i, key));
      if (c) return Status::Conflict("read-write conflict");
    }
  }
  return Status::Ok();
}

Result<mvcc::CommitResult> Transaction::Commit(bool durable, Validation v) {
  // A transaction commits at most once (a broken invariant, not a user error).
  if (committed_) return Status::Invalid("transaction already committed");
  committed_ = true;
  if (empty()) {
    if (v == Validation::kNone) return mvcc::CommitResult{snap_.csn(), 0};
    // A read-only transaction is serializable at its snapshot: nothing to check.
    return mvcc::CommitResult{snap_.csn(), 0};
  }
  std::vector<mvcc::Write> batch;
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (auto& [k, v] : writes_[i]) {
      batch.push_back(mvcc::Write{static_cast<Table>(i), k, std::move(v)});
    }
  }
  // writes_ keeps its keys (values were moved out): Validate reads them.
  if (v == Validation::kNone) return store_->Commit(std::move(batch), durable);
  return store_->Commit(std::move(batch), durable, [this, v] { return Validate(v); });
}

}  // namespace dbfs::txn
