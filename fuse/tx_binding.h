// TxBindings: which explicit transaction a kernel request belongs to.
//
// A transaction begun through the control channel (`dbfs tx begin/run`) is
// bound to a root process: pid + its start time from /proc/PID/stat, so a
// recycled pid never inherits it. Every FUSE request carries the calling
// thread's id; TxOf walks thread -> process (Tgid) -> parent -> ... until it
// meets a bound root or pid 1, and caches the answer per pid, tagged with a
// generation that changes whenever a binding is made or dropped and with the
// caller's start time. When nothing is bound the lookup costs one atomic
// load. The engine knows nothing of processes: the adapter puts the id in
// Caller::tx.
//
// A watcher thread aborts a bound transaction whose root process is gone
// (`dbfs tx run` killed, the shell of `dbfs tx begin` exited) rather than at
// tx_timeout, so its --lock locks do not block others that long (`dbfs tx
// run` keeps its exited child unreaped until the commit), and drops bindings
// of transactions the engine no longer has.
//
// Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

#include "fs/filesystem.h"
#include "kvstore/status.h"

namespace dbfs::fuse {

// /proc facts about a task (thread or process).
struct ProcInfo {
  int32_t tgid = 0;
  int32_t ppid = 0;
  uint32_t uid = 0;    // effective uid of the task (the owner of /proc/PID)
  uint64_t start = 0;  // start time in clock ticks since boot
};
std::optional<ProcInfo> ReadProc(int32_t pid);
// The command line of a process, arguments separated by spaces ("" if gone).
std::string ReadCmdline(int32_t pid);
// The command name of a process (/proc/PID/comm; "" if gone).
std::string ReadComm(int32_t pid);

class TxBindings {
 public:
  // `fs` must outlive the bindings. Starts the watcher.
  explicit TxBindings(Filesystem* fs);
  ~TxBindings();
  TxBindings(const TxBindings&) = delete;
  TxBindings& operator=(const TxBindings&) = delete;

  // Binds the process tree of `pid` (whose /proc facts are `root`) to
  // transaction `tx`. Busy when that process is already a bound root.
  Status Bind(int32_t pid, const ProcInfo& root, uint64_t tx);
  // Drops the binding of `tx`, if any.
  void Unbind(uint64_t tx);
  // The transaction the task `pid` runs in (0: none).
  uint64_t TxOf(int32_t pid);
  // Whether any transaction is bound now (one atomic load).
  bool AnyBound() const { return bound_.load(std::memory_order_acquire) != 0; }

  // Transactions aborted because their root process was gone.
  uint64_t root_gone_aborts() const { return root_gone_.load(std::memory_order_relaxed); }

 private:
  struct Root {
    int32_t pid = 0;
    uint64_t start = 0;
  };
  struct Cached {
    uint64_t start = 0;
    uint64_t gen = 0;
    uint64_t tx = 0;  // 0: not in a transaction
  };
  void Watch();

  Filesystem* const fs_;
  std::mutex mu_;
  std::unordered_map<uint64_t, Root> roots_;   // tx -> root process, guarded by mu_
  std::unordered_map<int32_t, Cached> cache_;  // pid -> answer, guarded by mu_
  uint64_t gen_ = 0;                           // guarded by mu_
  std::atomic<size_t> bound_{0};               // roots_.size(), read without mu_
  std::atomic<uint64_t> root_gone_{0};

  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  bool stop_ = false;  // guarded by watch_mu_
  std::thread watcher_;
};

}  // namespace dbfs::fuse
