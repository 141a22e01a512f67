#include "elle/recorder.h"

#include <algorithm>
#include <chrono>
#include <ostream>
#include <string>

namespace dbfs::elle {
namespace {

HistoryRecorder::Clock SteadyClockSinceNow() {
  const auto start = std::chrono::steady_clock::now();
  return [start] {
    return static_cast<int64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count());
  };
}

}  // namespace

HistoryRecorder::HistoryRecorder() : HistoryRecorder(Options()) {}

HistoryRecorder::HistoryRecorder(Options options)
    : clock_(options.clock ? std::move(options.clock) : SteadyClockSinceNow()),
      sink_(options.sink),
      keep_in_memory_(options.keep_in_memory) {}

Result<int64_t> HistoryRecorder::Invoke(int64_t process, std::vector<Mop> txn) {
  for (Mop& mop : txn) mop.list.reset();
  std::lock_guard<std::mutex> lock(mu_);
  if (open_.count(process) != 0) {
    return Status::Invalid("process " + std::to_string(process) +
                           " invoked a transaction while its previous one is still open");
  }
  Op op;
  op.type = Op::kInvoke;
  op.process = process;
  op.value = txn;
  auto index = RecordLocked(std::move(op));
  if (index.ok()) open_.emplace(process, std::move(txn));
  return index;
}

Result<int64_t> HistoryRecorder::Complete(int64_t process, Op::Type type,
                                          std::optional<std::vector<Mop>> value) {
  if (type == Op::kInvoke) return Status::Invalid("Complete with type :invoke");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = open_.find(process);
  if (it == open_.end()) {
    return Status::Invalid("process " + std::to_string(process) +
                           " completed a transaction it never invoked");
  }
  Op op;
  op.type = type;
  op.process = process;
  op.value = value ? std::move(*value) : std::move(it->second);
  open_.erase(it);
  return RecordLocked(std::move(op));
}

Result<int64_t> HistoryRecorder::RecordLocked(Op op) {
  if (!sink_status_.ok()) return sink_status_;
  // Clamp so :time never decreases along :index, whatever the clock does.
  last_time_ = std::max(last_time_, clock_());
  op.time = last_time_;
  op.index = next_index_;
  if (sink_ != nullptr) {
    *sink_ << ToEdn(op) << '\n';
    if (!*sink_) {
      sink_status_ =
          Status::IOError("writing the history failed at op " + std::to_string(op.index));
      return sink_status_;
    }
  }
  ++next_index_;
  if (keep_in_memory_) ops_.push_back(std::move(op));
  return next_index_ - 1;
}

History HistoryRecorder::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  return ops_;
}

int64_t HistoryRecorder::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_index_;
}

std::vector<int64_t> HistoryRecorder::OpenProcesses() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<int64_t> out;
  out.reserve(open_.size());
  for (const auto& [process, txn] : open_) out.push_back(process);
  std::sort(out.begin(), out.end());
  return out;
}

Status HistoryRecorder::sink_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sink_status_;
}

}  // namespace dbfs::elle
