#include "fuse/ll_ops.h"

#include "fuse/ops/ops.h"
#include "kvstore/metrics.h"

#include <string>

namespace dbfs::fuse {

namespace {

// Timed<Name, F>::Run: the handler F, its duration observed in the latency
// histogram "fuse_NAME" (kvstore/metrics.h). Nearly every handler replies
// before it returns, so this is the request's service time in the daemon (a
// blocking lock request that is answered later counts until it returns).
template <size_t N>
struct OpName {
  constexpr OpName(const char (&s)[N]) {  // NOLINT: implicit by design
    for (size_t i = 0; i < N; ++i) text[i] = s[i];
  }
  char text[N];
};

template <OpName Name, auto F>
struct Timed;
template <OpName Name, typename... A, void (*F)(A...)>
struct Timed<Name, F> {
  static void Run(A... a) {
    static metrics::Histogram& h = metrics::Histogram::Named(std::string("fuse_") + Name.text);
    metrics::ScopedTimer t(h);
    F(a...);
  }
};
#define DBFS_TIMED(name, fn) &Timed<#name, fn>::Run

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops o{};
  o.init = ops::Init;
  o.destroy = ops::Destroy;
  o.lookup = DBFS_TIMED(lookup, ops::Lookup);
  o.forget = ops::Forget;
  o.forget_multi = ops::ForgetMulti;
  o.getattr = DBFS_TIMED(getattr, ops::GetAttr);
  o.setattr = DBFS_TIMED(setattr, ops::SetAttr);
  o.readlink = DBFS_TIMED(readlink, ops::Readlink);
  o.mknod = DBFS_TIMED(mknod, ops::Mknod);
  o.mkdir = DBFS_TIMED(mkdir, ops::Mkdir);
  o.unlink = DBFS_TIMED(unlink, ops::Unlink);
  o.rmdir = DBFS_TIMED(rmdir, ops::Rmdir);
  o.symlink = DBFS_TIMED(symlink, ops::Symlink);
  o.rename = DBFS_TIMED(rename, ops::Rename);
  o.link = DBFS_TIMED(link, ops::Link);
  o.open = DBFS_TIMED(open, ops::Open);
  o.read = DBFS_TIMED(read, ops::Read);
  o.write = DBFS_TIMED(write, ops::Write);
  o.flush = DBFS_TIMED(flush, ops::Flush);
  o.release = DBFS_TIMED(release, ops::Release);
  o.fsync = DBFS_TIMED(fsync, ops::Fsync);
  o.opendir = DBFS_TIMED(opendir, ops::OpenDir);
  o.readdir = DBFS_TIMED(readdir, ops::ReadDir);
  o.readdirplus = DBFS_TIMED(readdirplus, ops::ReadDirPlus);
  o.releasedir = DBFS_TIMED(releasedir, ops::ReleaseDir);
  o.fsyncdir = DBFS_TIMED(fsyncdir, ops::FsyncDir);
  o.statfs = DBFS_TIMED(statfs, ops::StatFs);
  o.setxattr = DBFS_TIMED(setxattr, ops::SetXattr);
  o.getxattr = DBFS_TIMED(getxattr, ops::GetXattr);
  o.listxattr = DBFS_TIMED(listxattr, ops::ListXattr);
  o.removexattr = DBFS_TIMED(removexattr, ops::RemoveXattr);
  o.access = DBFS_TIMED(access, ops::Access);
  o.create = DBFS_TIMED(create, ops::Create);
  o.getlk = DBFS_TIMED(getlk, ops::GetLk);
  o.setlk = DBFS_TIMED(setlk, ops::SetLk);
  o.flock = DBFS_TIMED(flock, ops::Flock);
  o.fallocate = DBFS_TIMED(fallocate, ops::Fallocate);
  o.lseek = DBFS_TIMED(lseek, ops::Lseek);
  o.copy_file_range = DBFS_TIMED(copy_file_range, ops::CopyFileRange);
  return o;
}
#undef DBFS_TIMED

}  // namespace

const fuse_lowlevel_ops& Operations() {
  static const fuse_lowlevel_ops kOps = MakeOperations();
  return kOps;
}

}  // namespace dbfs::fuse
