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
    // The kernel makes a dentry for every entry that carries attributes, so
    // the name must name that inode now, not only in the listing's snapshot:
    // a directory renamed since would get a second dentry under its old
    // name, which the kernel resolves by moving the directory back there in
    // its cache (or fails later lookups with ESTALE, found by fsstress).
    // Lookup counts the kernel's reference like a LOOKUP would.
    Result<Attr> attr = a.fs().Lookup(c, ino, d.name);
    if (!attr.ok() && attr.status().code() != Code::kNotFound) {
      if (used == 0) return ReplyErr(req, attr.status());
      break;  // return what we have; the next call reports the error
    }
    fuse_entry_param e{};
    if (attr.ok() && attr->ino == d.ino) {
      e = EntryOf(req, *attr, dir_uncached || a.fs().Uncached(c, d.ino));
    } else {
      // Gone or replaced since the listing was taken: listed (the snapshot
      // had it), but without attributes, so the kernel makes no dentry.
      if (attr.ok()) a.fs().Forget(attr->ino, 1);
      e.attr.st_ino = d.ino;
      e.attr.st_mode = d.type;
    }
    fuse_add_direntry_plus(req, buf + used, room, d.name.c_str(), &e, next);
    used += need;
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
