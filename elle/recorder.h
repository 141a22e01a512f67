// HistoryRecorder: collects the history of a running workload.
//
// Clients call Invoke before they start a transaction and Complete when they
// know its outcome. The recorder assigns each op its :index (0, 1, 2, ... in
// recording order) and its :time (nanoseconds since the recorder was created,
// from a monotonic clock, never decreasing along the indices), keeps the
// history in memory and, when given a sink, also writes every op to it as one
// EDN line as it is recorded — so a run that dies still leaves a readable
// (partial) history behind.
//
// Thread-safe: any number of client threads may record concurrently; one
// mutex orders them, and that order is the history's real-time order (an op
// is recorded after the client observed it, before it acts on it).
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <vector>

#include "elle/history.h"
#include "kvstore/status.h"

namespace dbfs::elle {

class HistoryRecorder {
 public:
  // Monotonic nanoseconds; injected so tests control time.
  using Clock = std::function<int64_t()>;

  struct Options {
    Clock clock;                   // default: std::chrono::steady_clock
    std::ostream* sink = nullptr;  // not owned; must outlive the recorder
    bool keep_in_memory = true;    // false: only the sink gets the ops
  };

  HistoryRecorder();
  explicit HistoryRecorder(Options options);
  HistoryRecorder(const HistoryRecorder&) = delete;
  HistoryRecorder& operator=(const HistoryRecorder&) = delete;

  // Records the invocation of `txn` by `process` and returns its index. Read
  // results in `txn` are dropped: an invocation reads nil.
  // REQUIRES: `process` has no open invocation (else Invalid).
  Result<int64_t> Invoke(int64_t process, std::vector<Mop> txn);

  // Records the completion of `process`'s open invocation and returns its
  // index. `value` is the transaction with its read results (for :ok); when
  // omitted, the invocation's value is repeated (typical for :fail and :info).
  // REQUIRES: `process` has an open invocation and type != kInvoke.
  Result<int64_t> Complete(int64_t process, Op::Type type,
                           std::optional<std::vector<Mop>> value = std::nullopt);

  // A copy of the ops recorded so far (empty when !keep_in_memory).
  History Snapshot() const;
  // Number of ops recorded so far.
  int64_t size() const;
  // Processes with an invocation that has not completed yet, sorted.
  std::vector<int64_t> OpenProcesses() const;
  // The sink's sticky error: once a write to the sink failed, every later
  // Invoke/Complete returns it too.
  Status sink_status() const;

 private:
  // REQUIRES: mu_ held.
  Result<int64_t> RecordLocked(Op op);

  const Clock clock_;
  std::ostream* const sink_;
  const bool keep_in_memory_;

  mutable std::mutex mu_;
  History ops_;
  int64_t next_index_ = 0;
  int64_t last_time_ = 0;
  std::unordered_map<int64_t, std::vector<Mop>> open_;  // process -> invoked value
  Status sink_status_;
};

}  // namespace dbfs::elle
