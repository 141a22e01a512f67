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

void GetXattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Adapter& a = AdapterOf(req);
  // Virtual attributes of the root: the `dbfs` tool's control channel.
  if (ControlChannel::IsControl(ino, name)) {
    return ReplySized(req, a.control().Handle(CallerOf(req), name), size);
  }
  ReplySized(req, a.fs().GetXattr(CallerOf(req), ino, name), size);
}

void ListXattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  ReplySized(req, AdapterOf(req).fs().ListXattr(CallerOf(req), ino), size);
}

void RemoveXattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  ReplyErr(req, AdapterOf(req).fs().RemoveXattr(CallerOf(req), ino, name));
}

}  // namespace dbfs::fuse::ops
