// Extended attributes: setxattr, getxattr, listxattr, removexattr.
#include <string>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {

// getxattr/listxattr protocol: size 0 asks for the size; a value larger than
// the caller's buffer is ERANGE.
void ReplySized(fuse_req_t req, const Result<std::string>& r, size_t size) {
  if (!r.ok()) return ReplyErr(req, r.status());
  if (size == 0) {
    fuse_reply_xattr(req, r->size());
  } else if (r->size() > size) {
    ReplyErr(req, Status(Code::kRange, "xattr buffer too small"));
  } else {
    fuse_reply_buf(req, r->data(), r->size());
  }
}

}  // namespace

void SetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size,
              int flags) {
  ReplyErr(req, AdapterOf(req).fs().SetXattr(CallerOf(req), ino, name,
                                             std::string_view(value, size), flags));
}

// The adapter's lock manager counters, appended to the engine's statistics
// (`dbfs stats`: the dbfs.stats xattr of the root) as "lock_<name> <value>".
void AppendLockStats(fuse_req_t req, std::string* text) {
  const txn::LockStats st = AdapterOf(req).locks().stats();
  const std::pair<const char*, uint64_t> rows[] = {
      {"acquired", st.acquired},   {"immediate", st.immediate}, {"backoffs", st.backoffs},
      {"waits", st.waits},         {"deadlocks", st.deadlocks}, {"cancelled", st.cancelled},
      {"timeouts", st.timeouts},   {"would_block", st.would_block},
  };
  if (!text->empty() && text->back() != '\n') text->push_back('\n');
  for (const auto& [key, value] : rows) {
    text->append("lock_").append(key).append(" ").append(std::to_string(value)).append("\n");
  }
}

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Result<std::string> r = AdapterOf(req).fs().GetXattr(CallerOf(req), ino, name);
  if (r.ok() && ino == FUSE_ROOT_ID && name == kStatsXattr) {
    AppendLockStats(req, &*r);
  }
  ReplySized(req, r, size);
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ReplySized(req, AdapterOf(req).fs().ListXattr(CallerOf(req), ino), size);
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyErr(req, AdapterOf(req).fs().RemoveXattr(CallerOf(req), ino, name));
}

}  // namespace dbfs::fuse::ops
