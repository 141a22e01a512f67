#include "fuse/ll_invalidator.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>

namespace dbfs::fuse {

void Invalidator::Attach(fuse_session* se) {
  {
    std::unique_lock<std::shared_mutex> g(session_mu_);
    se_ = se;
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = false;
  }
  worker_ = std::thread([this] { Work(); });
}

void Invalidator::Detach() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
    queued_.clear();
    entries_done_ += queued_entries_.size();
    queued_entries_.clear();
  }
  cv_.notify_all();
  done_cv_.notify_all();
  if (worker_.joinable()) worker_.join();
  std::unique_lock<std::shared_mutex> g(session_mu_);
  se_ = nullptr;
}

void Invalidator::Invalidate(uint64_t ino, bool sync) {
  if (sync) return Notify(ino);
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stop_) return;
    queued_.insert(ino);
  }
  cv_.notify_one();
}

bool Invalidator::InvalidateEntries(const std::set<std::pair<uint64_t, std::string>>& entries,
                                    std::chrono::milliseconds wait) {
  if (entries.empty()) return true;
  std::unique_lock<std::mutex> lk(mu_);
  if (stop_) return true;
  for (const auto& e : entries) queued_entries_.push_back(e);
  entries_queued_ += entries.size();
  const uint64_t target = entries_queued_;
  cv_.notify_one();
  const bool done = done_cv_.wait_for(lk, wait, [&] { return stop_ || entries_done_ >= target; });
  if (!done) {
    spdlog::warn("invalidating {} directory entries in the kernel took over {} ms; not waiting longer",
                 entries.size(), wait.count());
  }
  return done;
}

void Invalidator::NotifyEntry(uint64_t parent, const std::string& name) {
  std::shared_lock<std::shared_mutex> g(session_mu_);
  if (se_ == nullptr) return;
  const int rc = fuse_lowlevel_notify_inval_entry(se_, parent, name.data(), name.size());
  // ENOENT: the kernel has no such entry cached; nothing to drop.
  if (rc != 0 && rc != -ENOENT) {
    spdlog::debug("invalidating entry {}/{} in the kernel failed: {}", parent, name, std::strerror(-rc));
  }
}

void Invalidator::InvalidateRange(uint64_t ino, uint64_t off, uint64_t len) {
  Notify(ino, static_cast<int64_t>(off), static_cast<int64_t>(len));
}

void Invalidator::Notify(uint64_t ino, int64_t off, int64_t len) {
  std::shared_lock<std::shared_mutex> g(session_mu_);
  if (se_ == nullptr) return;
  // Always the attributes too (and the kernel bumps the inode's attribute
  // version, so a GETATTR reply already on its way cannot bring them back).
  const int rc = fuse_lowlevel_notify_inval_inode(se_, ino, off, len);
  // ENOENT: the kernel does not know the inode, so it caches nothing of it.
  if (rc != 0 && rc != -ENOENT) {
    spdlog::debug("invalidating inode {} in the kernel failed: {}", ino, std::strerror(-rc));
  }
}

void Invalidator::Work() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [this] { return stop_ || !queued_.empty() || !queued_entries_.empty(); });
    if (stop_) return;
    if (!queued_entries_.empty()) {
      auto e = std::move(queued_entries_.front());
      queued_entries_.pop_front();
      lk.unlock();
      NotifyEntry(e.first, e.second);
      lk.lock();
      ++entries_done_;
      done_cv_.notify_all();
      continue;
    }
    const uint64_t ino = *queued_.begin();
    queued_.erase(queued_.begin());
    lk.unlock();
    Notify(ino);
    lk.lock();
  }
}

}  // namespace dbfs::fuse
