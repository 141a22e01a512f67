// Test-only: generates list-append histories from an in-memory database with a
// chosen isolation level, recorded through HistoryRecorder exactly as the
// workload runner would.
//
//   kSerializable     every transaction executes atomically at its completion
//                     (inside its real-time interval): strict serializable,
//                     so the checker must find nothing, with or without
//                     realtime edges.
//   kSnapshot         reads from a snapshot taken at invocation, appends
//                     installed at commit, first committer wins: snapshot
//                     isolation. Allows write skew (G2-item) but never G0, G1
//                     or G-single.
//   kReadCommitted    each read sees the latest committed state when it
//                     executes; appends take a (no-wait) write lock and are
//                     installed at commit. Allows read skew, lost updates
//                     (G-single) and non-repeatable reads, never G0 or G1.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <map>
#include <random>
#include <unordered_map>
#include <vector>

#include "elle/history.h"
#include "elle/recorder.h"

namespace dbfs::elle::sim {

enum class Isolation { kSerializable, kSnapshot, kReadCommitted };

struct SimOptions {
  int processes = 200;
  int txns = 5000;
  int keys = 20;               // keys in use at any time
  int max_txn_len = 4;         // 1..max_txn_len micro-ops per transaction
  int max_writes_per_key = 0;  // > 0: retire a key after that many appends (like Jepsen)
  double fail_rate = 0.03;     // transactions the client gives up on before commit
  double info_rate = 0.01;     // outcome unknown; applied or not, at random
  Isolation isolation = Isolation::kSerializable;
  uint64_t seed = 1;
};

class Simulator {
 public:
  explicit Simulator(const SimOptions& o)
      : o_(o),
        rng_(o.seed),
        recorder_(HistoryRecorder::Options{[this] { return now_ * 1000; }, nullptr, true}) {}

  History Run() {
    for (int i = 0; i < o_.keys; ++i) active_.push_back(next_key_++);
    for (int p = 0; p < o_.processes; ++p) idle_.push_back(p);
    int issued = 0;
    while (issued < o_.txns || !inflight_.empty()) {
      ++now_;
      const bool can_invoke = issued < o_.txns && !idle_.empty();
      // Invoke while fewer than ~all processes are busy, otherwise advance.
      if (can_invoke && (inflight_.empty() || Chance(0.5))) {
        Invoke();
        ++issued;
      } else {
        Advance(std::uniform_int_distribution<size_t>(0, inflight_.size() - 1)(rng_));
      }
    }
    return recorder_.Snapshot();
  }

 private:
  struct Inflight {
    int64_t process;
    std::vector<Mop> txn;
    size_t next_mop = 0;                     // kReadCommitted executes one mop per step
    int64_t snapshot = 0;                    // kSnapshot: commit counter at invocation
    std::map<int64_t, size_t> snapshot_len;  // kSnapshot: key -> visible length
  };

  bool Chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }

  int64_t PickKey() {
    // Skewed: low indices (hot keys) far more likely.
    double u = std::uniform_real_distribution<double>(0, 1)(rng_);
    size_t i = static_cast<size_t>(u * u * static_cast<double>(active_.size()));
    return active_[std::min(i, active_.size() - 1)];
  }

  void Invoke() {
    size_t slot = std::uniform_int_distribution<size_t>(0, idle_.size() - 1)(rng_);
    int64_t process = idle_[slot];
    idle_.erase(idle_.begin() + static_cast<std::ptrdiff_t>(slot));
    Inflight f;
    f.process = process;
    int len = std::uniform_int_distribution<int>(1, o_.max_txn_len)(rng_);
    for (int i = 0; i < len; ++i) {
      int64_t key = PickKey();
      if (Chance(0.5)) {
        f.txn.push_back(Mop::Append(key, ++counter_[key]));
        if (o_.max_writes_per_key > 0 && counter_[key] >= o_.max_writes_per_key) Retire(key);
      } else {
        f.txn.push_back(Mop::Read(key));
      }
    }
    if (o_.isolation == Isolation::kSnapshot) {
      for (const auto& [key, list] : db_) f.snapshot_len[key] = list.size();
      f.snapshot = commits_;
    }
    auto index = recorder_.Invoke(process, f.txn);
    index.status().IgnoreError();  // a simulator bug would show as a test failure later
    inflight_.push_back(std::move(f));
  }

  void Retire(int64_t key) {
    auto it = std::find(active_.begin(), active_.end(), key);
    if (it != active_.end()) *it = next_key_++;
  }

  // Runs one step of an in-flight transaction; completes it when done.
  void Advance(size_t i) {
    Inflight& f = inflight_[i];
    if (o_.isolation == Isolation::kReadCommitted && f.next_mop < f.txn.size()) {
      Mop& m = f.txn[f.next_mop];
      if (m.f == Mop::kAppend) {
        // Appends take a write lock until commit (no-wait: a conflict aborts),
        // so the transaction's own appends stay at the end of the list.
        auto [it, inserted] = locks_.emplace(m.key, f.process);
        if (!inserted && it->second != f.process) {
          Complete(i, /*conflict=*/true);
          return;
        }
      }
      ++f.next_mop;
      if (m.f == Mop::kRead) m.list = Visible(f, m.key, db_[m.key].size());
      return;
    }
    Complete(i);
  }

  // What `f` sees of `key`: the first `committed_len` committed elements plus
  // its own appends so far.
  std::vector<int64_t> Visible(const Inflight& f, int64_t key, size_t committed_len) {
    const auto& list = db_[key];
    std::vector<int64_t> v(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(committed_len));
    for (size_t j = 0; j < f.next_mop && j < f.txn.size(); ++j) {
      if (f.txn[j].f == Mop::kAppend && f.txn[j].key == key) v.push_back(f.txn[j].value);
    }
    return v;
  }

  void Apply(const Inflight& f) {
    for (const Mop& m : f.txn) {
      if (m.f == Mop::kAppend) db_[m.key].push_back(m.value);
    }
    ++commits_;
  }

  void Complete(size_t i, bool conflict = false) {
    Inflight f = std::move(inflight_[i]);
    inflight_.erase(inflight_.begin() + static_cast<std::ptrdiff_t>(i));
    int64_t process = f.process;
    for (auto it = locks_.begin(); it != locks_.end();) {
      it = it->second == process ? locks_.erase(it) : std::next(it);
    }
    Op::Type outcome = Op::kOk;
    if (conflict || Chance(o_.fail_rate))
      outcome = Op::kFail;
    else if (Chance(o_.info_rate))
      outcome = Op::kInfo;

    if (outcome == Op::kOk || outcome == Op::kInfo) {
      switch (o_.isolation) {
        case Isolation::kSerializable:
          // Execute everything now, atomically.
          for (f.next_mop = 0; f.next_mop < f.txn.size(); ++f.next_mop) {
            Mop& m = f.txn[f.next_mop];
            if (m.f == Mop::kRead) m.list = Visible(f, m.key, db_[m.key].size());
          }
          break;
        case Isolation::kSnapshot: {
          for (f.next_mop = 0; f.next_mop < f.txn.size(); ++f.next_mop) {
            Mop& m = f.txn[f.next_mop];
            if (m.f != Mop::kRead) continue;
            auto it = f.snapshot_len.find(m.key);
            m.list = Visible(f, m.key, it == f.snapshot_len.end() ? 0 : it->second);
          }
          // First committer wins: abort if a key we append to changed since
          // our snapshot.
          for (const Mop& m : f.txn) {
            if (m.f != Mop::kAppend) continue;
            auto it = f.snapshot_len.find(m.key);
            size_t seen = it == f.snapshot_len.end() ? 0 : it->second;
            if (db_[m.key].size() != seen) outcome = Op::kFail;
          }
          break;
        }
        case Isolation::kReadCommitted:
          break;  // reads already executed step by step
      }
    }
    bool applied = outcome == Op::kOk || (outcome == Op::kInfo && Chance(0.5));
    if (applied) Apply(f);
    if (outcome == Op::kOk) {
      recorder_.Complete(process, Op::kOk, f.txn).status().IgnoreError();
    } else {
      recorder_.Complete(process, outcome).status().IgnoreError();
    }
    // After :info a process is never reused (Jepsen gives the client a new one).
    idle_.push_back(outcome == Op::kInfo ? process + o_.processes : process);
  }

  SimOptions o_;
  std::mt19937_64 rng_;
  int64_t now_ = 0;
  HistoryRecorder recorder_;
  std::vector<int64_t> active_;
  int64_t next_key_ = 0;
  std::unordered_map<int64_t, int64_t> counter_;
  std::unordered_map<int64_t, std::vector<int64_t>> db_;
  int64_t commits_ = 0;
  std::vector<int64_t> idle_;
  std::vector<Inflight> inflight_;
  std::map<int64_t, int64_t> locks_;  // kReadCommitted: key -> process holding it
};

inline History Simulate(const SimOptions& o) { return Simulator(o).Run(); }

}  // namespace dbfs::elle::sim
