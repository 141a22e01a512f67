#include "txn/transaction.h"

namespace dbfs::txn {

Transaction::Transaction(mvcc::Store* store) : store_(store), snap_(store->AcquireSnapshot()) {}

Transaction::Transaction(mvcc::Store* store, mvcc::Snapshot snap)
    : store_(store), snap_(std::move(snap)) {}

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

Result<mvcc::CommitResult> Transaction::Commit(bool durable, Validation v) {
  // A transaction commits at most once (a broken invariant, not a user error).
  if (committed_) return Status::Invalid("transaction already committed");
  committed_ = true;
  // An empty transaction publishes nothing; read-only, it is serializable at
  // its snapshot: nothing to check either.
  if (empty()) return mvcc::CommitResult{snap_.csn()};
  mvcc::CommitRequest req;
  req.durable = durable;
  req.meta = meta_;
  // Inode locks serialize the autocommit operations of one process only: on
  // a volume other processes share, what this one writes is validated too
  // (first committer wins; the caller runs the operation again).
  if (v == Validation::kNone && store_->shared()) v = Validation::kWrites;
  if (v != Validation::kNone) {
    mvcc::ValidationSet& vs = req.validation.emplace();
    vs.snapshot = snap_.csn();
    vs.benign = benign_;
    for (int i = 0; i < mvcc::kNumTables; ++i) {
      for (const auto& kv : writes_[i]) {
        if (!Merged(i, kv.first)) vs.write_keys.push_back({static_cast<Table>(i), kv.first});
      }
      if (v != Validation::kReadsAndWrites) continue;
      for (const auto& [b, e] : read_ranges_[i]) vs.read_ranges.push_back({static_cast<Table>(i), b, e});
      for (const auto& key : read_keys_[i]) vs.read_keys.push_back({static_cast<Table>(i), key});
    }
  }
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    auto* fns = merges_ ? &merges_->fns[i] : nullptr;
    for (auto& [k, val] : writes_[i]) {
      if (fns) {
        auto fn = fns->find(k);
        if (fn != fns->end()) {
          req.merges.push_back(mvcc::Merge{static_cast<Table>(i), k, std::move(fn->second)});
          continue;
        }
      }
      req.writes.push_back(mvcc::Write{static_cast<Table>(i), k, std::move(val)});
    }
  }
  mvcc::Conflict conflict;
  auto r = store_->Commit(std::move(req), &conflict);
  if (!r.ok() && r.status().code() == Code::kConflict) conflict_ = conflict.key;
  return r;
}

}  // namespace dbfs::txn
