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

bool Retention::Keeps(Csn csn, Csn visible) const {
  if (csn > visible) return false;
  if (csn >= horizon) return true;
  for (const NamedSnapshot& s : snapshots) {
    if (s.csn == csn) return true;
  }
  return false;
}

Snapshot::~Snapshot() {
  if (store_) store_->ReleaseSnapshot(csn_);
}

}  // namespace dbfs::mvcc
