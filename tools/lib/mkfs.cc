#include "tools/lib/mkfs.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "fs/filesystem.h"
#include "mvcc/volume.h"
#include "mvcc/volume_lock.h"

namespace dbfs {
namespace {

constexpr mode_t kVolumeDirMode = 0700;
constexpr char kMetaDir[] = "meta";
constexpr char kWalDir[] = "wal";

std::string Join(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// "a/b/" -> "a/b"; keeps "/" as is.
std::string StripTrailingSlashes(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p;
}

std::string ParentDir(const std::string& dir) {
  const std::string p = StripTrailingSlashes(dir);
  const size_t slash = p.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return p.substr(0, slash);
}

// Names in `dir` other than "." and "..".
Result<std::vector<std::string>> ListDir(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Status::FromErrno(errno, "open directory " + dir);
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d);
    if (e == nullptr) break;
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  const int err = errno;
  ::closedir(d);
  if (err != 0) return Status::FromErrno(err, "read directory " + dir);
  return names;
}

// Makes the entries of `dir` durable.
Status SyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno(errno, "open directory " + dir);
  Status s;
  if (::fsync(fd) != 0) s = Status::FromErrno(errno, "fsync directory " + dir);
  if (::close(fd) != 0 && s.ok()) s = Status::FromErrno(errno, "close directory " + dir);
  return s;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), kVolumeDirMode) != 0) {
    return Status::FromErrno(errno, "create directory " + path);
  }
  return Status::Ok();
}

}  // namespace

Result<Superblock> Mkfs(const std::string& volume_dir, const MkfsOptions& options) {
  const std::string dir = StripTrailingSlashes(volume_dir);
  if (dir.empty()) return Status::Invalid("volume directory must not be empty");

  bool created = false;
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::FromErrno(errno, "stat " + dir);
    if (::mkdir(dir.c_str(), kVolumeDirMode) != 0) {
      return Status::FromErrno(errno, "create volume directory " + dir);
    }
    created = true;
  } else if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDir, dir + " exists and is not a directory", ENOTDIR);
  }

  // Checked before taking the lock, so refusing does not leave a lock file in
  // somebody's unrelated directory.
  DBFS_ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir));
  if (!names.empty() && !options.force) {
    return Status::Exists(dir + " is not empty; use --force to overwrite");
  }

  // Held until return: no dbfs-mount or fsck may open the volume while it is
  // being replaced, and a mounted volume is refused here (Busy).
  DBFS_ASSIGN_OR_RETURN(VolumeLock lock, VolumeLock::Acquire(dir, "mkfs.dbfs"));

  // Again under the lock: another mkfs may have filled the directory since.
  DBFS_ASSIGN_OR_RETURN(names, ListDir(dir));
  for (const std::string& name : names) {
    if (name == kVolumeLockFileName) continue;  // our lock lives on this inode
    if (!options.force) return Status::Exists(dir + " is not empty; use --force to overwrite");
    std::error_code ec;
    // remove_all does not follow symlinks: a link inside the volume is removed,
    // not its target.
    std::filesystem::remove_all(Join(dir, name), ec);
    if (ec) return Status::FromErrno(ec.value(), "remove " + Join(dir, name));
  }

  DBFS_RETURN_IF_ERROR(MakeDir(Join(dir, kMetaDir)));
  DBFS_RETURN_IF_ERROR(MakeDir(Join(dir, kWalDir)));
  Superblock sb = NewSuperblock();
  // Also syncs `dir`, which makes meta/ and wal/ durable with the superblock.
  DBFS_RETURN_IF_ERROR(WriteSuperblock(dir, sb));
  DBFS_RETURN_IF_ERROR(Filesystem::Initialize(dir));

  // Without these a power loss could drop the entries of the files that
  // Initialize created (LMDB syncs file data, not directory entries).
  DBFS_RETURN_IF_ERROR(SyncDir(Join(dir, kMetaDir)));
  DBFS_RETURN_IF_ERROR(SyncDir(Join(dir, kWalDir)));
  // Without this a power loss could drop entries Initialize added at the top level.
  DBFS_RETURN_IF_ERROR(SyncDir(dir));
  if (created) {
    // Without this a power loss could drop the new volume directory itself.
    DBFS_RETURN_IF_ERROR(SyncDir(ParentDir(dir)));
  }
  return sb;
}

Status MkfsCluster(const std::string& meta_url, const std::string& data_url,
                   const MkfsOptions& options) {
  DBFS_RETURN_IF_ERROR(
      mvcc::CreateClusterVolume(meta_url, data_url, options.force, mvcc::ClusterOpenOptions{}));
  return Filesystem::Initialize(meta_url);
}

}  // namespace dbfs
