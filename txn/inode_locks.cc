#include "txn/inode_locks.h"

#include <algorithm>

namespace dbfs::txn {

uint32_t InodeLocks::Stripe(uint64_t ino) {
  // Fibonacci hashing spreads sequential inode numbers over the stripes.
  return static_cast<uint32_t>((ino * 0x9E3779B97F4A7C15ull) >> 52) % kStripes;
}

InodeLocks::Guard InodeLocks::Lock(std::initializer_list<uint64_t> inos) {
  return Lock(std::vector<uint64_t>(inos));
}

InodeLocks::Guard InodeLocks::Lock(const std::vector<uint64_t>& inos) {
  Guard g;
  g.owner_ = this;
  for (uint64_t ino : inos) {
    if (ino != 0) g.stripes_.push_back(Stripe(ino));
  }
  std::sort(g.stripes_.begin(), g.stripes_.end());
  g.stripes_.erase(std::unique(g.stripes_.begin(), g.stripes_.end()), g.stripes_.end());
  // Ascending order everywhere: no lock-order cycles are possible.
  for (uint32_t s : g.stripes_) mu_[s].lock();
  return g;
}

void InodeLocks::Guard::Release() {
  if (!owner_) return;
  for (auto it = stripes_.rbegin(); it != stripes_.rend(); ++it) owner_->mu_[*it].unlock();
  stripes_.clear();
  owner_ = nullptr;
}

}  // namespace dbfs::txn
