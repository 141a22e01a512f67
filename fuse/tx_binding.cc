#include "fuse/tx_binding.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

namespace dbfs::fuse {

std::optional<ProcInfo> ReadProc(int32_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", pid);
  FILE* f = fopen(path, "re");
  if (!f) return std::nullopt;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  // The command may contain spaces and parentheses: parse after the last ')'.
  const char* p = strrchr(buf, ')');
  if (!p) return std::nullopt;
  ProcInfo info;
  char state;
  unsigned long long start;
  int got = sscanf(p + 2,
                   "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %llu",
                   &state, &info.ppid, &start);
  if (got != 3) return std::nullopt;
  info.start = start;
  snprintf(path, sizeof(path), "/proc/%d/status", pid);
  f = fopen(path, "re");
  if (f) {
    char line[256];
    bool tgid = false, uid = false;
    while ((!tgid || !uid) && fgets(line, sizeof(line), f)) {
      if (sscanf(line, "Tgid: %d", &info.tgid) == 1) tgid = true;
      unsigned real, effective;
      if (sscanf(line, "Uid: %u %u", &real, &effective) == 2) {
        info.uid = effective;
        uid = true;
      }
    }
    fclose(f);
  }
  if (info.tgid == 0) info.tgid = pid;
  return info;
}

std::string ReadCmdline(int32_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
  FILE* f = fopen(path, "re");
  if (!f) return "";
  char buf[4096];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  std::string s(buf, n);
  while (!s.empty() && s.back() == '\0') s.pop_back();
  for (char& ch : s) {
    if (ch == '\0') ch = ' ';
  }
  return s;
}

std::string ReadComm(int32_t pid) {
  // Called for every committing operation: plain system calls, no stdio.
  char path[32] = "/proc/";
  char* end = std::to_chars(path + 6, path + sizeof(path) - 6, pid).ptr;
  std::memcpy(end, "/comm", 6);
  const int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  char buf[64];
  const ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  if (n <= 0) return "";
  std::string s(buf, static_cast<size_t>(n));
  if (s.back() == '\n') s.pop_back();
  return s;
}

TxBindings::TxBindings(Filesystem* fs) : fs_(fs) {
  watcher_ = std::thread([this] { Watch(); });
}

TxBindings::~TxBindings() {
  {
    std::lock_guard g(watch_mu_);
    stop_ = true;
  }
  watch_cv_.notify_all();
  if (watcher_.joinable()) watcher_.join();
}

Status TxBindings::Bind(int32_t pid, const ProcInfo& root, uint64_t tx) {
  std::lock_guard g(mu_);
  for (const auto& [id, r] : roots_) {
    if (r.pid == pid && r.start == root.start) {
      return Status::Busy("process " + std::to_string(pid) + " is already bound to transaction " +
                          std::to_string(id));
    }
  }
  roots_[tx] = Root{pid, root.start};
  ++gen_;
  cache_.clear();
  bound_.store(roots_.size(), std::memory_order_release);
  return Status::Ok();
}

void TxBindings::Unbind(uint64_t tx) {
  std::lock_guard g(mu_);
  if (roots_.erase(tx) == 0) return;
  ++gen_;
  cache_.clear();
  bound_.store(roots_.size(), std::memory_order_release);
}

uint64_t TxBindings::TxOf(int32_t pid) {
  if (pid <= 0 || bound_.load(std::memory_order_acquire) == 0) return 0;
  // /proc is read without mu_ held: every request of every process asks this
  // while any transaction is bound, and they must not queue behind one
  // another's file reads.
  auto self = ReadProc(pid);
  if (!self) return 0;
  std::vector<std::pair<uint64_t, Root>> roots;
  uint64_t gen;
  {
    std::lock_guard g(mu_);
    if (roots_.empty()) return 0;
    auto cached = cache_.find(pid);
    if (cached != cache_.end() && cached->second.gen == gen_ &&
        cached->second.start == self->start) {
      return cached->second.tx;
    }
    gen = gen_;
    roots.assign(roots_.begin(), roots_.end());
  }
  // Walk up: thread -> its process -> parent -> ... until a bound root.
  uint64_t found = 0;
  int32_t cur = pid;
  std::optional<ProcInfo> info = self;
  for (int depth = 0; info && cur > 1 && depth < 128 && !found; ++depth) {
    for (const auto& [tx, r] : roots) {
      if (r.pid == cur && r.start == info->start) {
        found = tx;
        break;
      }
    }
    cur = info->tgid != cur ? info->tgid : info->ppid;
    info = ReadProc(cur);
  }
  std::lock_guard g(mu_);
  // Bindings changed meanwhile: the walk may be stale for them, so it is not
  // cached (the next request walks again).
  if (gen == gen_) cache_[pid] = Cached{self->start, gen_, found};
  return found;
}

void TxBindings::Watch() {
  std::unique_lock lock(watch_mu_);
  while (!watch_cv_.wait_for(lock, std::chrono::seconds(1), [&] { return stop_; })) {
    if (bound_.load(std::memory_order_acquire) == 0) continue;
    lock.unlock();
    std::vector<std::pair<uint64_t, Root>> roots;
    {
      std::lock_guard g(mu_);
      roots.assign(roots_.begin(), roots_.end());
    }
    for (const auto& [tx, r] : roots) {
      if (!fs_->TxExists(tx)) {
        Unbind(tx);  // ended without the control channel (unmount, ...)
        continue;
      }
      auto info = ReadProc(r.pid);
      if (info && info->start == r.start) continue;
      spdlog::warn("transaction {} aborted: its root process {} is gone", tx, r.pid);
      root_gone_.fetch_add(1, std::memory_order_relaxed);
      Status st = fs_->AbortTxInternally(tx, "root process gone");
      if (!st.ok() && st.code() != Code::kNotFound) {
        spdlog::warn("aborting transaction {} failed: {}", tx, st.ToString());
      }
      Unbind(tx);
    }
    lock.lock();
  }
}

}  // namespace dbfs::fuse
