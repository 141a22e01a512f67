// InodeLocks: exclusive locks on inodes for autocommit operations.
//
// Every mutating filesystem operation locks the inodes whose keys it writes
// (parents whose entries change, the inodes whose attributes, data or
// xattrs change) before it takes its snapshot, so concurrent autocommit
// operations on the same inode serialize and never lose an update, while
// operations on different inodes run in parallel. Locks are striped (a fixed
// array of mutexes indexed by a hash of the inode number) and always taken in
// ascending stripe order, so two operations can never deadlock.
// Readers take no locks: they read a snapshot.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <vector>

namespace dbfs::txn {

class InodeLocks {
 public:
  static constexpr size_t kStripes = 4096;

  // RAII guard over a set of stripes. Move-only.
  class Guard {
   public:
    Guard() = default;
    Guard(Guard&& o) noexcept : owner_(o.owner_), stripes_(std::move(o.stripes_)) { o.owner_ = nullptr; }
    Guard& operator=(Guard&& o) noexcept {
      Release();
      owner_ = o.owner_;
      stripes_ = std::move(o.stripes_);
      o.owner_ = nullptr;
      return *this;
    }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard() { Release(); }
    void Release();

   private:
    friend class InodeLocks;
    InodeLocks* owner_ = nullptr;
    std::vector<uint32_t> stripes_;
  };

  // Locks every inode in `inos` (0 entries are ignored).
  Guard Lock(std::initializer_list<uint64_t> inos);
  Guard Lock(const std::vector<uint64_t>& inos);

 private:
  static uint32_t Stripe(uint64_t ino);
  std::array<std::mutex, kStripes> mu_;
};

}  // namespace dbfs::txn
