// Directories: opendir, readdir, readdirplus, releasedir, fsyncdir.
#include <string_view>
#include <vector>

#include "fuse/ll_context.h"
#include "fuse/ops/ops.h"

namespace dbfs::fuse::ops {

namespace {

bool IsDotOrDotDot(std::string_view name) { return name == "." || name == ".."; }

// Lists the handle's entries from index `off` on; an entry's offset is its
// index + 1 (where the next call resumes).
void ReadDirCommon(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi,
                   bool plus) {
  Adapter& a = AdapterOf(req);
  const Caller c = CallerOf(req);
  const bool dir_uncached = plus && a.fs().Uncached(c, ino);
  if (off < 0) return ReplyErr(req, Status::Invalid("negative directory offset"));
  if (off == 0) {
    // rewinddir(3) is a seek to 0 on the same handle: the kernel reads from
    // offset 0 again. Names created since opendir must appear (POSIX).
    const Status s = a.fs().RewindDir(c, ino, fi->fh);
    if (!s.ok()) return ReplyErr(req, s);
  }
  const std::vector<DirEntry>* entries = a.fs().DirEntries(fi->fh);
  if (entries == nullptr) return ReplyErr(req, Status(Code::kBadFd, "unknown directory handle"));
  char* buf = ThreadBuffer(size);
  size_t used = 0;
  for (size_t i = static_cast<size_t>(off); i < entries->size(); ++i) {
    const DirEntry& d = (*entries)[i];
    const off_t next = static_cast<off_t>(i + 1);
    const size_t room = size - used;
    if (!plus) {
      struct stat st {};
      st.st_ino = d.ino;
      st.st_mode = d.type;
      const size_t n = fuse_add_direntry(req, buf + used, room, d.name.c_str(), &st, next);
      if (n > room) break;
      used += n;
      continue;
    }
    if (IsDotOrDotDot(d.name)) {
      // The kernel takes no reference for "." and "..": no lookup, no attrs.
      fuse_entry_param e{};
      e.attr.st_ino = d.ino;
      e.attr.st_mode = d.type;
      const size_t n = fuse_add_direntry_plus(req, buf + used, room, d.name.c_str(), &e, next);
      if (n > room) break;
      used += n;
      continue;
    }
    const size_t need = fuse_add_direntry_plus(req, nullptr, 0, d.name.c_str(), nullptr, 0);
    if (need > room) break;
    Result<Attr> attr = a.fs().GetAttr(c, d.ino);
    if (!attr.ok()) {
      // Removed since OpenDir took the listing: not an error, just gone.
      if (attr.status().code() == Code::kNotFound) continue;
      if (used == 0) return ReplyErr(req, attr.status());
      break;  // return what we have; the next call reports the error
    }
    fuse_entry_param e = EntryOf(req, *attr, dir_uncached || a.fs().Uncached(c, d.ino));
    fuse_add_direntry_plus(req, buf + used, room, d.name.c_str(), &e, next);
    used += need;
    // The kernel will hold a lookup reference for every entry it receives.
    a.fs().AddLookup(d.ino);
  }
  fuse_reply_buf(req, buf, used);
}

}  // namespace

void OpenDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Filesystem& fs = AdapterOf(req).fs();
  Result<uint64_t> fh = fs.OpenDir(CallerOf(req), ino);
  if (!fh.ok()) return ReplyErr(req, fh.status());
  fi->fh = *fh;
  if (fuse_reply_open(req, fi) != 0) fs.ReleaseDir(ino, *fh).IgnoreError();
}

void ReadDir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, /*plus=*/false);
}

void ReadDirPlus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  ReadDirCommon(req, ino, size, off, fi, /*plus=*/true);
}

void ReleaseDir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  ReplyErr(req, AdapterOf(req).fs().ReleaseDir(ino, fi->fh));
}

void FsyncDir(fuse_req_t req, fuse_ino_t ino, int datasync, fuse_file_info* fi) {
  ReplyErr(req, AdapterOf(req).fs().FsyncDir(CallerOf(req), ino, fi->fh, datasync != 0));
}

}  // namespace dbfs::fuse::ops
