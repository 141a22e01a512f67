#include "fuse/ll_context.h"

#include <spdlog/spdlog.h>
#include <sys/file.h>

#include <cstring>
#include <vector>

namespace dbfs::fuse {

void AdapterLocks::ReleaseFlock(uint64_t ino, uint64_t owner) {
  // LOCK_UN never waits; it fails only for a bad operation.
  const Status s = mgr_.Flock(owner, /*pid=*/0, ino, LOCK_UN, /*nonblock=*/true);
  if (!s.ok()) spdlog::warn("flock release of inode {} failed: {}", ino, s.ToString());
}

namespace {

// The adapter's lock manager counters, appended to the engine's statistics
// (`dbfs stats`) as "lock_<name> <value>".
void AppendLockStats(const txn::LockStats& st, std::string* text) {
  const std::pair<const char*, uint64_t> rows[] = {
      {"acquired", st.acquired},   {"immediate", st.immediate}, {"backoffs", st.backoffs},
      {"waits", st.waits},         {"deadlocks", st.deadlocks}, {"cancelled", st.cancelled},
      {"timeouts", st.timeouts},   {"would_block", st.would_block},
  };
  for (const auto& [key, value] : rows) {
    text->append("lock_").append(key).append(" ").append(std::to_string(value)).append("\n");
  }
}

}  // namespace

Adapter::Adapter(Filesystem* fs, CachePolicy cache)
    : fs_(fs),
      locks_(fs),
      bindings_(fs),
      control_(fs, &bindings_,
               [this](std::string* text) { AppendLockStats(locks_.stats(), text); }),
      cache_(cache) {
  // The commit log names the command of each caller.
  fs->SetCallerNamer([](int32_t pid) { return ReadComm(pid); });
}

void AdapterLocks::ReleasePosix(uint64_t ino, uint64_t fh, uint64_t owner) {
  {
    std::lock_guard<std::mutex> g(ofd_mu_);
    auto it = ofd_owners_.find(fh);
    if (it != ofd_owners_.end()) {
      it->second.erase(owner);
      if (it->second.empty()) ofd_owners_.erase(it);
    }
  }
  mgr_.ReleaseRanges(owner, ino);
}

void AdapterLocks::NoteRangeLock(uint64_t fh, uint64_t owner) {
  std::lock_guard<std::mutex> g(ofd_mu_);
  ofd_owners_[fh].insert(owner);
}

void AdapterLocks::ReleaseOfd(uint64_t ino, uint64_t fh) {
  std::set<uint64_t> owners;
  {
    std::lock_guard<std::mutex> g(ofd_mu_);
    auto it = ofd_owners_.find(fh);
    if (it == ofd_owners_.end()) return;
    owners = std::move(it->second);
    ofd_owners_.erase(it);
  }
  for (uint64_t owner : owners) mgr_.ReleaseRanges(owner, ino);
}

Adapter& AdapterOf(fuse_req_t req) {
  Adapter& a = *static_cast<Adapter*>(fuse_req_userdata(req));
  a.transport().NoteRequest(fuse_req_is_uring(req));
  return a;
}

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller c;
  c.uid = ctx->uid;
  c.gid = ctx->gid;
  c.pid = ctx->pid;
  c.umask = ctx->umask;
  c.tx = AdapterOf(req).bindings().TxOf(ctx->pid);
  return c;
}

void ReplyErr(fuse_req_t req, const Status& status) {
  const int err = status.ToErrno();
  switch (status.code()) {
    case Code::kIOError:
    case Code::kCorruption:
    case Code::kReadOnly:
      spdlog::warn("request failed: {} (errno {})", status.ToString(), err);
      break;
    default:
      if (err != 0) spdlog::trace("request failed: {} (errno {})", status.ToString(), err);
      break;
  }
  fuse_reply_err(req, err);
}

bool Uncached(fuse_req_t req, const Caller& c, uint64_t ino) {
  return AdapterOf(req).fs().Uncached(c, ino);
}

fuse_entry_param EntryOf(fuse_req_t req, const Attr& attr, bool uncached) {
  const CachePolicy& cache = AdapterOf(req).cache();
  fuse_entry_param e{};
  e.ino = attr.ino;
  e.generation = attr.generation;
  attr.ToStat(&e.attr);
  e.attr_timeout = uncached ? 0.0 : cache.attr_timeout;
  e.entry_timeout = uncached ? 0.0 : cache.entry_timeout;
  // A snapshot's contents never change (a deleted snapshot's entry is
  // invalidated by the engine).
  if (attr.immutable) e.attr_timeout = e.entry_timeout = kImmutableTimeout;
  return e;
}

void ReplyEntry(fuse_req_t req, const Caller& c, uint64_t parent, const Result<Attr>& attr) {
  if (!attr.ok()) return ReplyErr(req, attr.status());
  const bool uncached = Uncached(req, c, attr->ino) || Uncached(req, c, parent);
  fuse_entry_param e = EntryOf(req, *attr, uncached);
  Filesystem& fs = AdapterOf(req).fs();  // `req` is freed by the reply
  // The engine counted a lookup reference; a kernel that never got the reply
  // (interrupted request, unmounted) will never forget it.
  if (fuse_reply_entry(req, &e) != 0) fs.Forget(attr->ino, 1);
}

void ReplyAttr(fuse_req_t req, const Caller& c, const Result<Attr>& attr) {
  if (!attr.ok()) return ReplyErr(req, attr.status());
  struct stat st {};
  attr->ToStat(&st);
  const double timeout = attr->immutable ? kImmutableTimeout
                         : Uncached(req, c, attr->ino) ? 0.0
                                                       : AdapterOf(req).cache().attr_timeout;
  fuse_reply_attr(req, &st, timeout);
}

char* ThreadBuffer(size_t size) {
  thread_local std::vector<char> buffer;
  if (buffer.size() < size) buffer.resize(size);
  return buffer.data();
}

}  // namespace dbfs::fuse
