// getattr / setattr / access / statfs.
#include <sys/statvfs.h>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

void GetAttr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  (void)fi;
  const Caller c = CallerOf(req);
  ReplyAttr(req, c, AdapterOf(req).fs().GetAttr(c, ino));
}

void SetAttr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  (void)fi;  // ftruncate/fchmod: the inode is enough
  // FUSE_SET_ATTR_* -> SetAttrIn bits (same values, spelled out so a change
  // on either side fails to compile rather than silently mis-mapping).
  static_assert(
      SetAttrIn::kMode == FUSE_SET_ATTR_MODE && SetAttrIn::kUid == FUSE_SET_ATTR_UID &&
      SetAttrIn::kGid == FUSE_SET_ATTR_GID && SetAttrIn::kSize == FUSE_SET_ATTR_SIZE &&
      SetAttrIn::kAtime == FUSE_SET_ATTR_ATIME && SetAttrIn::kMtime == FUSE_SET_ATTR_MTIME &&
      SetAttrIn::kAtimeNow == FUSE_SET_ATTR_ATIME_NOW &&
      SetAttrIn::kMtimeNow == FUSE_SET_ATTR_MTIME_NOW && SetAttrIn::kCtime == FUSE_SET_ATTR_CTIME);
  SetAttrIn in;
  const unsigned set = static_cast<unsigned>(to_set);
  auto take = [&](unsigned fuse_bit, uint32_t our_bit) {
    if (set & fuse_bit) in.valid |= our_bit;
  };
  take(FUSE_SET_ATTR_MODE, SetAttrIn::kMode);
  take(FUSE_SET_ATTR_UID, SetAttrIn::kUid);
  take(FUSE_SET_ATTR_GID, SetAttrIn::kGid);
  take(FUSE_SET_ATTR_SIZE, SetAttrIn::kSize);
  take(FUSE_SET_ATTR_ATIME, SetAttrIn::kAtime);
  take(FUSE_SET_ATTR_MTIME, SetAttrIn::kMtime);
  take(FUSE_SET_ATTR_ATIME_NOW, SetAttrIn::kAtimeNow);
  take(FUSE_SET_ATTR_MTIME_NOW, SetAttrIn::kMtimeNow);
  take(FUSE_SET_ATTR_CTIME, SetAttrIn::kCtime);
  in.mode = attr->st_mode;
  in.uid = attr->st_uid;
  in.gid = attr->st_gid;
  if ((set & FUSE_SET_ATTR_SIZE) && attr->st_size < 0) {
    return ReplyErr(req, Status::Invalid("negative size"));
  }
  in.size = static_cast<uint64_t>(attr->st_size);
  in.atime = attr->st_atim;
  in.mtime = attr->st_mtim;
  in.ctime = attr->st_ctim;
  const Caller c = CallerOf(req);
  ReplyAttr(req, c, AdapterOf(req).fs().SetAttr(c, ino, in));
}

void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  ReplyErr(req, AdapterOf(req).fs().Access(CallerOf(req), ino, mask));
}

void StatFs(fuse_req_t req, fuse_ino_t ino) {
  (void)ino;
  Result<FsStat> r = AdapterOf(req).fs().StatFs();
  if (!r.ok()) return ReplyErr(req, r.status());
  struct statvfs st {};
  st.f_bsize = r->block_size;
  st.f_frsize = r->block_size;
  st.f_blocks = r->blocks;
  st.f_bfree = r->blocks_free;
  st.f_bavail = r->blocks_avail;
  st.f_files = r->files;
  st.f_ffree = r->files_free;
  st.f_favail = r->files_free;
  st.f_namemax = r->name_max;
  fuse_reply_statfs(req, &st);
}

}  // namespace dbfs::fuse::ops
