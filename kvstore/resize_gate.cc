#include "kvstore/resize_gate.h"

#include <cassert>

namespace dbfs::kv::internal {

void ResizeGate::lock_shared() {
  std::unique_lock l(mu_);
  // Join freely while other readers are in (nested ReadTxns on one thread
  // must not deadlock). Once the readers have drained and a resize waits,
  // hold back so the resize gets the gate.
  cv_.wait(l, [&] { return !exclusive_ && !(exclusive_waiting_ > 0 && readers_ == 0); });
  ++readers_;
}

void ResizeGate::unlock_shared() {
  std::lock_guard l(mu_);
  assert(readers_ > 0);  // every unlock_shared pairs with one lock_shared
  if (--readers_ == 0) cv_.notify_all();
}

void ResizeGate::lock() {
  std::unique_lock l(mu_);
  ++exclusive_waiting_;
  cv_.wait(l, [&] { return !exclusive_ && readers_ == 0; });
  --exclusive_waiting_;
  exclusive_ = true;
}

bool ResizeGate::try_lock() {
  std::lock_guard l(mu_);
  if (exclusive_ || readers_ > 0 || exclusive_waiting_ > 0) return false;
  exclusive_ = true;
  return true;
}

void ResizeGate::unlock() {
  std::lock_guard l(mu_);
  assert(exclusive_);  // only the holder unlocks
  exclusive_ = false;
  cv_.notify_all();
}

bool ResizeGate::TEST_exclusive_waiting() const {
  std::lock_guard l(mu_);
  return exclusive_waiting_ > 0;
}

int64_t ResizeGate::TEST_readers() const {
  std::lock_guard l(mu_);
  return readers_;
}

}  // namespace dbfs::kv::internal
