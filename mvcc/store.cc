#include "mvcc/store.h"

namespace dbfs::mvcc {

Snapshot& Snapshot::operator=(Snapshot&& o) noexcept {
  if (this != &o) {
    if (store_) store_->ReleaseSnapshot(csn_);
    store_ = o.store_;
    csn_ = o.csn_;
    o.store_ = nullptr;
  }
  return *this;
}

Snapshot::~Snapshot() {
  if (store_) store_->ReleaseSnapshot(csn_);
}

}  // namespace dbfs::mvcc
