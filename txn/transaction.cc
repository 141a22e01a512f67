#include "txn/transaction.h"

namespace dbfs::txn {

Transaction::Transaction(mvcc::Store* store) : store_(store), snap_(store->AcquireSnapshot()) {}

Result<std::optional<std::string>> Transaction::Get(Table t, std::string_view key) {
  const auto& w = writes_[static_cast<int>(t)];
  auto it = w.find(key);
  if (it != w.end()) return it->second;
  return store_->Get(snap_.csn(), t, key);
}

Status Transaction::Scan(Table t, std::string_view begin, std::string_view end,
                         const std::function<bool(std::string_view, std::string_view)>& fn) {
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

Result<mvcc::CommitResult> Transaction::Commit(bool durable) {
  // A transaction commits at most once (a broken invariant, not a user error).
  if (committed_) return Status::Invalid("transaction already committed");
  committed_ = true;
  if (empty()) return mvcc::CommitResult{snap_.csn(), 0};
  std::vector<mvcc::Write> batch;
  for (int i = 0; i < mvcc::kNumTables; ++i) {
    for (auto& [k, v] : writes_[i]) {
      batch.push_back(mvcc::Write{static_cast<Table>(i), k, std::move(v)});
    }
    writes_[i].clear();
  }
  return store_->Commit(std::move(batch), durable);
}

}  // namespace dbfs::txn
