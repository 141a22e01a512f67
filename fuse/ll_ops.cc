#include "fuse/ll_ops.h"

#include "fuse/ops/ops.h"

namespace dbfs::fuse {

namespace {

fuse_lowlevel_ops MakeOperations() {
  fuse_lowlevel_ops o{};
  o.init = ops::Init;
  o.destroy = ops::Destroy;
  o.lookup = ops::Lookup;
  o.forget = ops::Forget;
  o.forget_multi = ops::ForgetMulti;
  o.getattr = ops::GetAttr;
  o.setattr = ops::SetAttr;
  o.readlink = ops::Readlink;
  o.mknod = ops::Mknod;
  o.mkdir = ops::Mkdir;
  o.unlink = ops::Unlink;
  o.rmdir = ops::Rmdir;
  o.symlink = ops::Symlink;
  o.rename = ops::Rename;
  o.link = ops::Link;
  o.open = ops::Open;
  o.read = ops::Read;
  o.write = ops::Write;
  o.flush = ops::Flush;
  o.release = ops::Release;
  o.fsync = ops::Fsync;
  o.opendir = ops::OpenDir;
  o.readdir = ops::ReadDir;
  o.readdirplus = ops::ReadDirPlus;
  o.releasedir = ops::ReleaseDir;
  o.fsyncdir = ops::FsyncDir;
  o.statfs = ops::StatFs;
  o.setxattr = ops::SetXattr;
  o.getxattr = ops::GetXattr;
  o.listxattr = ops::ListXattr;
  o.removexattr = ops::RemoveXattr;
  o.access = ops::Access;
  o.create = ops::Create;
  o.getlk = ops::GetLk;
  o.setlk = ops::SetLk;
  o.flock = ops::Flock;
  o.fallocate = ops::Fallocate;
  o.lseek = ops::Lseek;
  o.copy_file_range = ops::CopyFileRange;
  return o;
}

}  // namespace

const fuse_lowlevel_ops& Operations() {
  static const fuse_lowlevel_ops kOps = MakeOperations();
  return kOps;
}

}  // namespace dbfs::fuse
