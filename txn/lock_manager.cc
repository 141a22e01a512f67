#include "txn/lock_manager.h"

#include <fcntl.h>
#include <sys/file.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <string>
#include <thread>

namespace dbfs::txn {

namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

bool Overlaps(uint64_t a_start, uint64_t a_end, uint64_t b_start, uint64_t b_end) {
  return a_start <= b_end && b_start <= a_end;
}

// Whether [a] and [b] overlap or touch (a.end + 1 == b.start), without overflow.
bool OverlapsOrAdjacent(const LockManager::Conflict& a, const LockManager::Conflict& b) {
  if (Overlaps(a.start, a.end, b.start, b.end)) return true;
  if (a.end != LockManager::kToEof && a.end + 1 == b.start) return true;
  if (b.end != LockManager::kToEof && b.end + 1 == a.start) return true;
  return false;
}

void AddUnique(std::vector<uint64_t>* v, uint64_t x) {
  if (std::find(v->begin(), v->end(), x) == v->end()) v->push_back(x);
}

}  // namespace

// ---- InodeLockGuard ----

InodeLockGuard::InodeLockGuard(InodeLockGuard&& o) noexcept
    : mgr_(o.mgr_), owner_(o.owner_), ino_(o.ino_) {
  o.mgr_ = nullptr;
}

InodeLockGuard& InodeLockGuard::operator=(InodeLockGuard&& o) noexcept {
  if (this != &o) {
    Release();
    mgr_ = o.mgr_;
    owner_ = o.owner_;
    ino_ = o.ino_;
    o.mgr_ = nullptr;
  }
  return *this;
}

void InodeLockGuard::Release() {
  if (mgr_ == nullptr) return;
  mgr_->UnlockInode(owner_, ino_);
  mgr_ = nullptr;
}

// ---- LockManager ----

LockManager::LockManager(uint64_t seed) : LockManager(Options{.seed = seed}) {}

LockManager::LockManager(const Options& options)
    : opts_(options), rng_counter_(SplitMix64(options.seed)) {}

LockManager::~LockManager() = default;

size_t LockManager::ShardIndex(uint64_t key) {
  static_assert(kShards == 64, "the shift below picks log2(kShards) bits");
  // Fibonacci hashing: consecutive inode numbers spread over all shards.
  return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> 58);
}

bool LockManager::InodeState::HeldBy(uint64_t owner) const {
  for (const InodeHolder& h : holders) {
    if (h.owner == owner) return true;
  }
  for (const Conflict& r : ranges) {
    if (r.owner == owner) return true;
  }
  for (const FlockHolder& f : flocks) {
    if (f.owner == owner) return true;
  }
  return false;
}

void LockManager::Blockers(const InodeState& st, const Request& req, std::vector<uint64_t>* out) {
  out->clear();
  switch (req.kind) {
    case Kind::kInode:
      for (const InodeHolder& h : st.holders) {
        if (h.owner == req.owner) continue;
        if (h.mode == LockMode::kExclusive || req.mode == LockMode::kExclusive) {
          AddUnique(out, h.owner);
        }
      }
      break;
    case Kind::kRange:
      for (const Conflict& r : st.ranges) {
        if (r.owner == req.owner || !Overlaps(r.start, r.end, req.start, req.end)) continue;
        if (r.type == F_WRLCK || req.type == F_WRLCK) AddUnique(out, r.owner);
      }
      break;
    case Kind::kFlock:
      for (const FlockHolder& f : st.flocks) {
        if (f.owner == req.owner) continue;
        if (f.type == LOCK_EX || req.type == LOCK_EX) AddUnique(out, f.owner);
      }
      break;
  }
}

void LockManager::ApplyRange(std::vector<Conflict>& ranges, const Conflict& lock) {
  Conflict merged = lock;
  std::vector<Conflict> kept;
  kept.reserve(ranges.size() + 2);
  for (const Conflict& l : ranges) {
    if (l.owner != lock.owner) {
      kept.push_back(l);
      continue;
    }
    if (lock.type != F_UNLCK && l.type == lock.type && OverlapsOrAdjacent(l, lock)) {
      // Same type, touching: absorbed into the new lock. The owner's locks
      // are disjoint, so the grown range covers no other lock of the owner.
      merged.start = std::min(merged.start, l.start);
      merged.end = std::max(merged.end, l.end);
      continue;
    }
    if (!Overlaps(l.start, l.end, lock.start, lock.end)) {
      kept.push_back(l);
      continue;
    }
    // Overlapped by a different type (or unlocked): keep what lies outside.
    if (l.start < lock.start) {
      Conflict left = l;
      left.end = lock.start - 1;
      kept.push_back(left);
    }
    if (lock.end != kToEof && l.end > lock.end) {
      Conflict right = l;
      right.start = lock.end + 1;
      kept.push_back(right);
    }
  }
  if (lock.type != F_UNLCK) kept.push_back(merged);
  ranges.swap(kept);
}

void LockManager::GrantLocked(Shard& sh, InodeState& st, const Request& req) {
  switch (req.kind) {
    case Kind::kInode: {
      auto it = std::find_if(st.holders.begin(), st.holders.end(),
                             [&](const InodeHolder& h) { return h.owner == req.owner; });
      if (it == st.holders.end()) {
        st.holders.push_back(InodeHolder{req.owner, req.pid, req.mode, 1});
      } else {
        ++it->count;
        if (req.mode == LockMode::kExclusive) it->mode = LockMode::kExclusive;
      }
      break;
    }
    case Kind::kRange:
      ApplyRange(st.ranges, Conflict{req.type, req.start, req.end, req.pid, req.owner});
      break;
    case Kind::kFlock: {
      auto it = std::find_if(st.flocks.begin(), st.flocks.end(),
                             [&](const FlockHolder& f) { return f.owner == req.owner; });
      if (it == st.flocks.end()) {
        st.flocks.push_back(FlockHolder{req.owner, req.pid, req.type});
      } else {
        // Another thread of the same owner got there first; the newest wins.
        it->type = req.type;
        it->pid = req.pid;
      }
      break;
    }
  }
  acquired_.fetch_add(1, std::memory_order_relaxed);
  IndexAdd(req.owner, req.ino);
  // New holders add wait-for edges (always towards req.owner, which is not
  // waiting now, so no cycle can close here); a range grant may also
  // downgrade or drop part of the owner's locks and unblock someone.
  RefreshLocked(sh, st);
}

void LockManager::RefreshLocked(Shard& sh, InodeState& st) {
  if (st.waiters.empty()) return;
  std::vector<std::vector<uint64_t>> fresh(st.waiters.size());
  bool wake = false;
  for (size_t i = 0; i < st.waiters.size(); ++i) {
    Blockers(st, st.waiters[i]->req, &fresh[i]);
    if (fresh[i].empty()) wake = true;
  }
  {
    // Edges are kept exact at every change of the inode, so a later cycle
    // search never trips over a stale edge (a released lock whose waiter has
    // not woken up yet), which would fail an innocent requester.
    std::lock_guard<std::mutex> g(graph_mu_);
    for (size_t i = 0; i < st.waiters.size(); ++i) st.waiters[i]->blockers.swap(fresh[i]);
  }
  if (wake) sh.cv.notify_all();
}

void LockManager::AfterReleaseLocked(Shard& sh, uint64_t owner, uint64_t ino) {
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return;
  InodeState& st = it->second;
  RefreshLocked(sh, st);
  if (!st.HeldBy(owner)) IndexRemove(owner, ino);
  if (st.empty()) sh.inodes.erase(it);
}

void LockManager::IndexAdd(uint64_t owner, uint64_t ino) {
  OwnerShard& os = owners_[ShardIndex(owner)];
  std::lock_guard<std::mutex> g(os.mu);
  os.inos[owner].insert(ino);
}

void LockManager::IndexRemove(uint64_t owner, uint64_t ino) {
  OwnerShard& os = owners_[ShardIndex(owner)];
  std::lock_guard<std::mutex> g(os.mu);
  auto it = os.inos.find(owner);
  if (it == os.inos.end()) return;
  it->second.erase(ino);
  if (it->second.empty()) os.inos.erase(it);
}

std::chrono::microseconds LockManager::BackoffDelay(int attempt) {
  int64_t base = opts_.backoff_initial.count();
  for (int i = 0; i < attempt && base < opts_.backoff_max.count(); ++i) base *= 2;
  base = std::min<int64_t>(base, opts_.backoff_max.count());
  if (base <= 0) return std::chrono::microseconds(0);
  // "Equal jitter": half the delay fixed, half random, so competing
  // requesters spread out but every one still backs off.
  const uint64_t r = SplitMix64(rng_counter_.fetch_add(1, std::memory_order_relaxed));
  const int64_t half = base / 2;
  return std::chrono::microseconds(base - half + static_cast<int64_t>(r % (half + 1)));
}

void LockManager::Sync(std::string_view point, uint64_t owner, uint64_t ino) {
  if (!has_hook_.load(std::memory_order_acquire)) return;
  std::shared_ptr<const SyncPoint> hook;
  {
    std::lock_guard<std::mutex> g(hook_mu_);
    hook = hook_;
  }
  if (hook && *hook) (*hook)(point, owner, ino);
}

bool LockManager::Cancelled(const std::atomic<bool>* cancel) const {
  return shutdown_.load(std::memory_order_acquire) ||
         (cancel != nullptr && cancel->load(std::memory_order_acquire));
}

Status LockManager::CancelStatus() const {
  // ENOLCK, not EINTR, for shutdown: the kernel turns EINTR from a lock
  // request into ERESTARTSYS, which leaks as errno 512 without a signal.
  if (shutdown_.load(std::memory_order_acquire)) {
    return Status(Code::kErrno, "lock manager shut down", ENOLCK);
  }
  return Status(Code::kErrno, "lock wait interrupted", EINTR);
}

Status LockManager::Acquire(const Request& req, bool wait, const std::atomic<bool>* cancel) {
  Shard& sh = ShardFor(req.ino);
  std::vector<uint64_t> blockers;
  std::unique_lock<std::mutex> lk(sh.mu);

  // 1. Try.
  {
    InodeState& st = sh.inodes[req.ino];
    Blockers(st, req, &blockers);
    if (blockers.empty()) {
      GrantLocked(sh, st, req);
      lk.unlock();
      immediate_.fetch_add(1, std::memory_order_relaxed);
      Sync("lock grant", req.owner, req.ino);
      return Status::Ok();
    }
    // `st` is not empty here: it holds a blocker.
  }
  if (!wait) {
    would_block_.fetch_add(1, std::memory_order_relaxed);
    if (req.kind == Kind::kFlock) {
      return Status(Code::kAgain, "conflicting flock held", EWOULDBLOCK);
    }
    return Status(Code::kAgain, "conflicting lock held", EAGAIN);
  }

  // 2. Back off: most conflicts are short critical sections that end within
  // microseconds, cheaper to sleep through than to register in the graph.
  for (int attempt = 0; attempt < opts_.backoff_attempts; ++attempt) {
    if (Cancelled(cancel)) {
      cancelled_.fetch_add(1, std::memory_order_relaxed);
      return CancelStatus();
    }
    lk.unlock();
    std::this_thread::sleep_for(BackoffDelay(attempt));
    backoffs_.fetch_add(1, std::memory_order_relaxed);
    lk.lock();
    InodeState& st = sh.inodes[req.ino];
    Blockers(st, req, &blockers);
    if (blockers.empty()) {
      GrantLocked(sh, st, req);
      lk.unlock();
      Sync("lock grant", req.owner, req.ino);
      return Status::Ok();
    }
  }

  // 3. Wait. `st` stays valid while `w` is registered in it: a state with
  // waiters is never erased, and unordered_map never moves its elements.
  InodeState& st = sh.inodes[req.ino];
  Waiter w{req, {}};
  st.waiters.push_back(&w);
  waits_.fetch_add(1, std::memory_order_relaxed);
  using Clock = std::chrono::steady_clock;
  const bool has_deadline = opts_.wait_timeout.count() > 0;
  const Clock::time_point deadline =
      has_deadline ? Clock::now() + opts_.wait_timeout : Clock::time_point::max();
  bool in_graph = false;
  bool announced = false;
  bool granted = false;
  bool victim = false;
  Status result;
  std::vector<uint64_t> cycle;
  for (;;) {
    Blockers(st, req, &blockers);
    if (blockers.empty()) {
      granted = true;
      break;
    }
    if (Cancelled(cancel)) {
      cancelled_.fetch_add(1, std::memory_order_relaxed);
      result = CancelStatus();
      break;
    }
    if (has_deadline && Clock::now() >= deadline) {
      timeouts_.fetch_add(1, std::memory_order_relaxed);
      result = Status(Code::kBusy, "lock wait timed out");
      break;
    }
    {
      std::lock_guard<std::mutex> g(graph_mu_);
      w.blockers = blockers;
      if (!in_graph) {
        graph_[req.owner].push_back(&w);
        in_graph = true;
      }
      // Every edge that appears elsewhere points at a requester that is
      // being granted (not waiting), so a cycle can only be closed by a
      // request that starts to wait: this one. It is the victim.
      if (FindCycleLocked(req.owner, &cycle)) {
        result = Status(Code::kDeadlock, DescribeCycleLocked(cycle), EDEADLK);
        UnregisterLocked(&w);
        in_graph = false;
        victim = true;
      }
    }
    if (victim) {
      deadlocks_.fetch_add(1, std::memory_order_relaxed);
      break;
    }
    if (!announced && has_hook_.load(std::memory_order_acquire)) {
      // Tell the test we are about to block; then re-check from the top, as
      // the state may have changed while the shard was unlocked.
      announced = true;
      lk.unlock();
      Sync("before wait", req.owner, req.ino);
      lk.lock();
      continue;
    }
    announced = false;
    Clock::time_point until = Clock::now() + opts_.cancel_poll;
    if (until > deadline) until = deadline;
    sh.cv.wait_until(lk, until);
  }

  st.waiters.erase(std::find(st.waiters.begin(), st.waiters.end(), &w));
  if (in_graph) {
    std::lock_guard<std::mutex> g(graph_mu_);
    UnregisterLocked(&w);
  }
  if (granted) {
    GrantLocked(sh, st, req);
  } else if (st.empty()) {
    sh.inodes.erase(req.ino);
  }
  lk.unlock();
  if (granted) {
    Sync("lock grant", req.owner, req.ino);
    return Status::Ok();
  }
  if (victim) Sync("deadlock victim chosen", req.owner, req.ino);
  return result;
}

bool LockManager::FindCycleLocked(uint64_t start, std::vector<uint64_t>* cycle) const {
  // Iterative DFS over owners; an owner's successors are the blockers of all
  // its blocked requests. Only blocked owners have successors.
  struct Frame {
    uint64_t owner;
    std::vector<uint64_t> next;
  };
  auto successors = [this](uint64_t owner) {
    std::vector<uint64_t> out;
    auto it = graph_.find(owner);
    if (it != graph_.end()) {
      for (const Waiter* w : it->second)
        out.insert(out.end(), w->blockers.begin(), w->blockers.end());
    }
    return out;
  };
  std::unordered_set<uint64_t> visited{start};
  std::vector<Frame> stack;
  stack.push_back(Frame{start, successors(start)});
  while (!stack.empty()) {
    if (stack.back().next.empty()) {
      stack.pop_back();
      continue;
    }
    const uint64_t n = stack.back().next.back();
    stack.back().next.pop_back();
    if (n == start) {
      cycle->clear();
      for (const Frame& f : stack) cycle->push_back(f.owner);
      return true;
    }
    if (!visited.insert(n).second) continue;
    if (graph_.count(n) != 0) stack.push_back(Frame{n, successors(n)});
  }
  return false;
}

std::string LockManager::DescribeCycleLocked(const std::vector<uint64_t>& cycle) const {
  std::string s = "deadlock:";
  for (uint64_t owner : cycle) {
    s += " owner " + std::to_string(owner);
    auto it = graph_.find(owner);
    if (it != graph_.end() && !it->second.empty()) {
      const Request& r = it->second.front()->req;
      s += " (pid " + std::to_string(r.pid) + ") waits on ino " + std::to_string(r.ino) + " ->";
    }
  }
  s += " owner " + std::to_string(cycle.front());
  return s;
}

void LockManager::UnregisterLocked(Waiter* w) {
  auto it = graph_.find(w->req.owner);
  assert(it != graph_.end());  // registered waiters are always in graph_
  std::erase(it->second, w);
  if (it->second.empty()) graph_.erase(it);
}

// ---- whole-inode locks ----

Status LockManager::LockInode(uint64_t owner, int32_t pid, uint64_t ino, LockMode mode, bool wait,
                              const std::atomic<bool>* cancel) {
  Request r{Kind::kInode, owner, pid, ino};
  r.mode = mode;
  return Acquire(r, wait, cancel);
}

Result<InodeLockGuard> LockManager::LockInodeScoped(uint64_t owner, int32_t pid, uint64_t ino,
                                                    LockMode mode, bool wait,
                                                    const std::atomic<bool>* cancel) {
  Status s = LockInode(owner, pid, ino, mode, wait, cancel);
  if (!s.ok()) return s;
  return InodeLockGuard(this, owner, ino);
}

void LockManager::UnlockInode(uint64_t owner, uint64_t ino) {
  Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return;
  auto& holders = it->second.holders;
  auto h = std::find_if(holders.begin(), holders.end(),
                        [owner](const InodeHolder& x) { return x.owner == owner; });
  if (h == holders.end()) return;
  if (--h->count > 0) return;  // still held: nothing changes for others
  holders.erase(h);
  AfterReleaseLocked(sh, owner, ino);
}

void LockManager::ReleaseAll(uint64_t owner) {
  std::unordered_set<uint64_t> inos;
  {
    OwnerShard& os = owners_[ShardIndex(owner)];
    std::lock_guard<std::mutex> g(os.mu);
    auto it = os.inos.find(owner);
    if (it == os.inos.end()) return;
    inos = std::move(it->second);
    os.inos.erase(it);
  }
  for (uint64_t ino : inos) {
    Shard& sh = ShardFor(ino);
    std::lock_guard<std::mutex> g(sh.mu);
    auto it = sh.inodes.find(ino);
    if (it == sh.inodes.end()) continue;
    InodeState& st = it->second;
    std::erase_if(st.holders, [owner](const InodeHolder& h) { return h.owner == owner; });
    std::erase_if(st.ranges, [owner](const Conflict& r) { return r.owner == owner; });
    std::erase_if(st.flocks, [owner](const FlockHolder& f) { return f.owner == owner; });
    // Also drops an index entry a concurrent grant of the same owner re-added.
    AfterReleaseLocked(sh, owner, ino);
  }
}

// ---- POSIX record locks ----

Status LockManager::SetRange(uint64_t owner, int32_t pid, uint64_t ino, int type, uint64_t start,
                             uint64_t end, bool wait, const std::atomic<bool>* cancel) {
  if (type != F_RDLCK && type != F_WRLCK && type != F_UNLCK) {
    return Status::Invalid("bad lock type");
  }
  if (start > end) return Status::Invalid("bad lock range");
  if (type == F_UNLCK) {
    Shard& sh = ShardFor(ino);
    std::lock_guard<std::mutex> g(sh.mu);
    auto it = sh.inodes.find(ino);
    if (it == sh.inodes.end()) return Status::Ok();
    ApplyRange(it->second.ranges, Conflict{F_UNLCK, start, end, pid, owner});
    AfterReleaseLocked(sh, owner, ino);
    return Status::Ok();
  }
  Request r{Kind::kRange, owner, pid, ino};
  r.type = type;
  r.start = start;
  r.end = end;
  return Acquire(r, wait, cancel);
}

std::optional<LockManager::Conflict> LockManager::TestRange(uint64_t owner, uint64_t ino, int type,
                                                            uint64_t start, uint64_t end) {
  if ((type != F_RDLCK && type != F_WRLCK) || start > end) return std::nullopt;
  Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return std::nullopt;
  for (const Conflict& r : it->second.ranges) {
    if (r.owner == owner || !Overlaps(r.start, r.end, start, end)) continue;
    if (r.type == F_WRLCK || type == F_WRLCK) return r;
  }
  return std::nullopt;
}

void LockManager::ReleaseRanges(uint64_t owner, uint64_t ino) {
  Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return;
  if (std::erase_if(it->second.ranges, [owner](const Conflict& r) { return r.owner == owner; }) ==
      0) {
    return;
  }
  AfterReleaseLocked(sh, owner, ino);
}

// ---- flock ----

Status LockManager::Flock(uint64_t owner, int32_t pid, uint64_t ino, int op, bool nonblock,
                          const std::atomic<bool>* cancel) {
  if ((op & LOCK_NB) != 0) {
    nonblock = true;
    op &= ~LOCK_NB;
  }
  if (op != LOCK_SH && op != LOCK_EX && op != LOCK_UN) {
    return Status::Invalid("bad flock operation");
  }
  {
    Shard& sh = ShardFor(ino);
    std::unique_lock<std::mutex> lk(sh.mu);
    auto it = sh.inodes.find(ino);
    if (it != sh.inodes.end()) {
      auto& flocks = it->second.flocks;
      auto f = std::find_if(flocks.begin(), flocks.end(),
                            [owner](const FlockHolder& x) { return x.owner == owner; });
      if (f != flocks.end()) {
        if (f->type == op) {
          // Already held in this mode: nothing to do, like Linux.
          acquired_.fetch_add(1, std::memory_order_relaxed);
          immediate_.fetch_add(1, std::memory_order_relaxed);
          lk.unlock();
          Sync("lock grant", owner, ino);
          return Status::Ok();
        }
        // Unlock or conversion: the old lock goes first (see the header).
        flocks.erase(f);
        AfterReleaseLocked(sh, owner, ino);
      }
    }
  }
  if (op == LOCK_UN) return Status::Ok();
  Request r{Kind::kFlock, owner, pid, ino};
  r.type = op;
  return Acquire(r, !nonblock, cancel);
}

// ---- waits ----

void LockManager::Interrupt() {
  for (Shard& sh : shards_) {
    // Under the mutex: a waiter checks its flag and starts waiting atomically
    // with respect to it, so the wakeup cannot fall between the two.
    std::lock_guard<std::mutex> g(sh.mu);
    sh.cv.notify_all();
  }
}

void LockManager::Interrupt(uint64_t ino) {
  Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  sh.cv.notify_all();
}

void LockManager::Shutdown() {
  shutdown_.store(true, std::memory_order_release);
  Interrupt();
}

LockStats LockManager::stats() const {
  LockStats s;
  s.acquired = acquired_.load(std::memory_order_relaxed);
  s.immediate = immediate_.load(std::memory_order_relaxed);
  s.backoffs = backoffs_.load(std::memory_order_relaxed);
  s.waits = waits_.load(std::memory_order_relaxed);
  s.deadlocks = deadlocks_.load(std::memory_order_relaxed);
  s.cancelled = cancelled_.load(std::memory_order_relaxed);
  s.timeouts = timeouts_.load(std::memory_order_relaxed);
  s.would_block = would_block_.load(std::memory_order_relaxed);
  return s;
}

// ---- tests ----

void LockManager::TEST_SetSyncPoint(SyncPoint f) {
  std::lock_guard<std::mutex> g(hook_mu_);
  const bool set = static_cast<bool>(f);
  hook_ = set ? std::make_shared<const SyncPoint>(std::move(f)) : nullptr;
  has_hook_.store(set, std::memory_order_release);
}

std::vector<LockManager::Conflict> LockManager::TEST_Ranges(uint64_t ino) const {
  const Shard& sh = ShardFor(ino);
  std::vector<Conflict> out;
  {
    std::lock_guard<std::mutex> g(sh.mu);
    auto it = sh.inodes.find(ino);
    if (it != sh.inodes.end()) out = it->second.ranges;
  }
  std::sort(out.begin(), out.end(), [](const Conflict& a, const Conflict& b) {
    return a.owner != b.owner ? a.owner < b.owner : a.start < b.start;
  });
  return out;
}

int LockManager::TEST_FlockOf(uint64_t owner, uint64_t ino) const {
  const Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return 0;
  for (const FlockHolder& f : it->second.flocks) {
    if (f.owner == owner) return f.type;
  }
  return 0;
}

std::optional<std::pair<LockMode, uint32_t>> LockManager::TEST_InodeHold(uint64_t owner,
                                                                         uint64_t ino) const {
  const Shard& sh = ShardFor(ino);
  std::lock_guard<std::mutex> g(sh.mu);
  auto it = sh.inodes.find(ino);
  if (it == sh.inodes.end()) return std::nullopt;
  for (const InodeHolder& h : it->second.holders) {
    if (h.owner == owner) return std::make_pair(h.mode, h.count);
  }
  return std::nullopt;
}

size_t LockManager::TEST_Waiters() const {
  std::lock_guard<std::mutex> g(graph_mu_);
  size_t n = 0;
  for (const auto& [owner, waiters] : graph_) n += waiters.size();
  return n;
}

size_t LockManager::TEST_LiveInodes() const {
  size_t n = 0;
  for (const Shard& sh : shards_) {
    std::lock_guard<std::mutex> g(sh.mu);
    n += sh.inodes.size();
  }
  return n;
}

}  // namespace dbfs::txn
