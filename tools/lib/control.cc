#include "tools/lib/control.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "libdbfs/dbfs.h"

namespace dbfs {

namespace {

// A libdbfs return code as a Status naming `what`.
Status LibStatus(int rc, const std::string& what) {
  switch (rc) {
    case DBFS_ENOTDBFS:
      return Status(Code::kInvalid, what + " is not a DBFS mount (or this command is unknown)");
    case DBFS_ESYSTEM:
      return Status::FromErrno(errno, what);
    case DBFS_ENOTX:
      return Status::FromErrno(ENOENT, what);
    case DBFS_EBUSY:
      return Status::FromErrno(EBUSY, what);
    case DBFS_EPERM:
      return Status::FromErrno(EPERM, what);
    case DBFS_EINVAL:
      return Status::FromErrno(EINVAL, what);
    default:
      return Status(Code::kInvalid, what + ": " + dbfs_strerror(rc));
  }
}

}  // namespace

// libdbfs does the request (and fetches long replies page by page).
Result<std::string> ControlRequest(const std::string& mount, const std::string& command) {
  char* reply = nullptr;
  size_t len = 0;
  const int rc = dbfs_control(mount.c_str(), command.c_str(), &reply, &len);
  if (rc != DBFS_OK) return LibStatus(rc, mount);
  std::string out(reply, len);
  std::free(reply);
  return out;
}

Result<std::string> FindDbfsMount(const std::string& path) {
  char* mount = nullptr;
  const int rc = dbfs_find_mount(path.c_str(), &mount);
  if (rc == DBFS_ENOTDBFS) return Status::NotFound(path + " is not inside a DBFS mount (use --mount)");
  if (rc != DBFS_OK) return LibStatus(rc, path);
  std::string out(mount);
  std::free(mount);
  return out;
}

}  // namespace dbfs
