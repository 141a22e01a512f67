// Names: readlink, mknod, mkdir, unlink, rmdir, symlink, rename, link.
#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

void Readlink(fuse_req_t req, fuse_ino_t ino) {
  Result<std::string> r = AdapterOf(req).fs().Readlink(CallerOf(req), ino);
  if (!r.ok()) return ReplyErr(req, r.status());
  fuse_reply_readlink(req, r->c_str());
}

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  const Caller c = CallerOf(req);
  ReplyEntry(req, c, parent, AdapterOf(req).fs().Mknod(c, parent, name, mode, rdev));
}

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  // The kernel sends only the permission bits; the type is implied.
  const Caller c = CallerOf(req);
  ReplyEntry(req, c, parent, AdapterOf(req).fs().Mkdir(c, parent, name, S_IFDIR | (mode & 07777)));
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, AdapterOf(req).fs().Unlink(CallerOf(req), parent, name));
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  ReplyErr(req, AdapterOf(req).fs().Rmdir(CallerOf(req), parent, name));
}

void Symlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  const Caller c = CallerOf(req);
  ReplyEntry(req, c, parent, AdapterOf(req).fs().Symlink(c, parent, name, link));
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent,
            const char* newname, unsigned int flags) {
  ReplyErr(req, AdapterOf(req).fs().Rename(CallerOf(req), parent, name, newparent, newname, flags));
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  const Caller c = CallerOf(req);
  ReplyEntry(req, c, newparent, AdapterOf(req).fs().Link(c, ino, newparent, newname));
}

}  // namespace dbfs::fuse::ops
