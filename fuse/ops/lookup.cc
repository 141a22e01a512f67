// lookup / forget: the kernel's lookup references on inodes.
#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  const Caller c = CallerOf(req);
  ReplyEntry(req, c, parent, AdapterOf(req).fs().Lookup(c, parent, name));
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  AdapterOf(req).fs().Forget(ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  Filesystem& fs = AdapterOf(req).fs();
  for (size_t i = 0; i < count; ++i) fs.Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

}  // namespace dbfs::fuse::ops
