#include "tools/lib/control.h"

#include <sys/xattr.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace dbfs {

namespace {

Result<std::string> RequestOnce(const std::string& mount, const std::string& command);

}  // namespace

// Long replies come in pages (fuse/control.h: kMoreMarker, dbfs.more:TOKEN).
Result<std::string> ControlRequest(const std::string& mount, const std::string& command) {
  DBFS_ASSIGN_OR_RETURN(std::string reply, RequestOnce(mount, command));
  std::string out;
  while (!reply.empty() && reply[0] == '\x01') {
    const size_t nl = reply.find('\n');
    if (nl == std::string::npos) return Status::Corruption("malformed paged reply");
    const std::string token = reply.substr(1, nl - 1);
    out.append(reply, nl + 1, std::string::npos);
    DBFS_ASSIGN_OR_RETURN(reply, RequestOnce(mount, "dbfs.more:" + token));
  }
  out += reply;
  return out;
}

namespace {

Result<std::string> RequestOnce(const std::string& mount, const std::string& command) {
  // One getxattr with a large buffer: a size probe would run the command twice.
  std::string buf(1 << 20, '\0');
  ssize_t n = getxattr(mount.c_str(), command.c_str(), buf.data(), buf.size());
  if (n < 0) {
    const int err = errno;
    if (err == ENODATA || err == ENOTSUP) {
      return Status(Code::kInvalid, mount + " is not a DBFS mount (or this command is unknown)");
    }
    return Status::FromErrno(err, mount);
  }
  buf.resize(static_cast<size_t>(n));
  return buf;
}

}  // namespace

Result<std::string> FindDbfsMount(const std::string& path) {
  char real[PATH_MAX];
  if (!realpath(path.c_str(), real)) return Status::FromErrno(errno, path);
  const std::string where(real);
  std::ifstream in("/proc/self/mountinfo");
  std::string line, best;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream ls(line);
    std::string id, parent, dev, root, mnt;
    ls >> id >> parent >> dev >> root >> mnt;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype != "fuse.dbfs") continue;
    // mountinfo escapes spaces etc. as \ooo.
    std::string m;
    for (size_t i = 0; i < mnt.size(); ++i) {
      if (mnt[i] == '\\' && i + 3 < mnt.size()) {
        m.push_back(static_cast<char>(std::stoi(mnt.substr(i + 1, 3), nullptr, 8)));
        i += 3;
      } else {
        m.push_back(mnt[i]);
      }
    }
    const bool inside = where == m || (where.rfind(m == "/" ? m : m + "/", 0) == 0);
    if (inside && m.size() > best.size()) best = m;
  }
  if (best.empty()) return Status::NotFound(path + " is not inside a DBFS mount (use --mount)");
  return best;
}

}  // namespace dbfs
