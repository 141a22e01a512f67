// libdbfs (dbfs.h): the control channel of a DBFS mount (dbfs(7)) for
// programs. Self-contained: it needs only libc, so it links into any
// program; the `dbfs` tool and tools/lib/control.cc use it too.
#include "libdbfs/dbfs.h"

#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>
#include <sstream>
#include <string>

#include "libdbfs/mountinfo.h"

struct dbfs_tx {
  std::string mount;
  std::string id;
  std::string detail;
};

namespace {

// A reply longer than one xattr value comes in pages: "\x01TOKEN\n" + page,
// the next page by "dbfs.more:TOKEN" (fuse/control.h).
constexpr char kMoreMarker = '\x01';
constexpr size_t kReplyBuffer = 1 << 20;

char* Dup(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// errno of a failed request -> return code.
int FromErrno(int err) {
  switch (err) {
    case ENODATA:
    case EOPNOTSUPP:
      return DBFS_ENOTDBFS;
    case ENOENT:
      return DBFS_ENOTX;
    case EBUSY:
      return DBFS_EBUSY;
    case EPERM:
    case EACCES:
      return DBFS_EPERM;
    case EINVAL:
      return DBFS_EINVAL;
    default:
      errno = err;
      return DBFS_ESYSTEM;
  }
}

// One getxattr with a large buffer: a size probe would run the command twice.
int RequestOnce(const std::string& mount, const std::string& command, std::string* reply) {
  reply->assign(kReplyBuffer, '\0');
  const ssize_t n = getxattr(mount.c_str(), command.c_str(), reply->data(), reply->size());
  if (n < 0) return FromErrno(errno);
  reply->resize(static_cast<size_t>(n));
  return DBFS_OK;
}

int Request(const std::string& mount, const std::string& command, std::string* out) {
  std::string reply;
  int rc = RequestOnce(mount, command, &reply);
  out->clear();
  while (rc == DBFS_OK && !reply.empty() && reply[0] == kMoreMarker) {
    const size_t nl = reply.find('\n');
    if (nl == std::string::npos) {
      errno = EPROTO;
      return DBFS_ESYSTEM;
    }
    const std::string token = reply.substr(1, nl - 1);
    out->append(reply, nl + 1, std::string::npos);
    rc = RequestOnce(mount, "dbfs.more:" + token, &reply);
  }
  if (rc == DBFS_OK) *out += reply;
  return rc;
}

int FindMount(const char* path, std::string* mount) {
  if (path == nullptr) return DBFS_EINVAL;
  char real[PATH_MAX];
  if (realpath(path, real) == nullptr) return DBFS_ESYSTEM;
  const std::string where(real);
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return DBFS_ESYSTEM;
  std::string line, best;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream fields(line);
    std::string id, parent, dev, root, mnt;
    fields >> id >> parent >> dev >> root >> mnt;
    const size_t dash = line.find(" - ");
    if (dash == std::string::npos) continue;
    std::istringstream rest(line.substr(dash + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype != "fuse.dbfs") continue;
    const std::string m = dbfs::UnescapeMountInfo(mnt);
    const bool inside = where == m || where.rfind(m == "/" ? m : m + "/", 0) == 0;
    if (inside && m.size() > best.size()) best = m;
  }
  if (best.empty()) return DBFS_ENOTDBFS;
  *mount = best;
  return DBFS_OK;
}

// Escapes a field of a control command: '\\' doubled, ':' and control
// characters as \xHH (fuse/history_control.cc's UnescapeField undoes it).
std::string EscapeField(const std::string& s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c == 0x7f || c == ':') {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out;
}

// An end-of-transaction reply: "ok [CSN]", "conflict PATH", "deadlock WHY".
int EndReply(dbfs_tx* tx, const std::string& reply) {
  auto after = [&](size_t n) { return reply.size() > n ? reply.substr(n) : std::string(); };
  if (reply.rfind("ok", 0) == 0) {
    tx->detail = after(3);
    return DBFS_OK;
  }
  if (reply.rfind("conflict ", 0) == 0) {
    tx->detail = after(9);
    return DBFS_ECONFLICT;
  }
  if (reply.rfind("deadlock ", 0) == 0) {
    tx->detail = after(9);
    return DBFS_EDEADLOCK;
  }
  tx->detail = "unexpected reply: " + reply;
  errno = EPROTO;
  return DBFS_ESYSTEM;
}

template <typename Fn>
int Guarded(Fn&& fn) {
  try {
    return fn();
  } catch (const std::bad_alloc&) {
    errno = ENOMEM;
    return DBFS_ESYSTEM;
  }
}

}  // namespace

extern "C" {

int dbfs_find_mount(const char* path, char** mount) {
  return Guarded([&]() -> int {
    if (mount == nullptr) return DBFS_EINVAL;
    std::string m;
    int rc = FindMount(path, &m);
    if (rc != DBFS_OK) return rc;
    *mount = Dup(m);
    if (*mount == nullptr) return DBFS_ESYSTEM;
    return DBFS_OK;
  });
}

int dbfs_control(const char* mount, const char* command, char** reply, size_t* len) {
  return Guarded([&]() -> int {
    if (mount == nullptr || command == nullptr || reply == nullptr) return DBFS_EINVAL;
    std::string out;
    int rc = Request(mount, command, &out);
    if (rc != DBFS_OK) return rc;
    *reply = Dup(out);
    if (*reply == nullptr) return DBFS_ESYSTEM;
    if (len != nullptr) *len = out.size();
    return DBFS_OK;
  });
}

int dbfs_tx_begin_pid(const char* path, pid_t pid, unsigned flags, const char* command,
                      dbfs_tx** tx) {
  return Guarded([&]() -> int {
    if (tx == nullptr || pid <= 0 || (flags & ~(DBFS_TX_SNAPSHOT | DBFS_TX_LOCK)) != 0) {
      return DBFS_EINVAL;
    }
    std::string mount;
    int rc = FindMount(path, &mount);
    if (rc != DBFS_OK) return rc;
    std::string c = "dbfs.tx.begin:" + std::to_string(pid) + ":" +
                    ((flags & DBFS_TX_SNAPSHOT) ? "snapshot" : "serializable") +
                    ((flags & DBFS_TX_LOCK) ? ":lock" : "");
    if (command != nullptr && *command != '\0') {
      std::string line(command);
      if (line.size() > 120) line.resize(120);  // an xattr name holds at most 255 bytes
      c += ":cmd=" + EscapeField(line);
    }
    std::string id;
    rc = Request(mount, c, &id);
    if (rc != DBFS_OK) return rc;
    *tx = new dbfs_tx{mount, id, ""};
    return DBFS_OK;
  });
}

int dbfs_tx_begin(const char* path, unsigned flags, dbfs_tx** tx) {
  return dbfs_tx_begin_pid(path, getpid(), flags, nullptr, tx);
}

int dbfs_tx_open(const char* path, const char* id, dbfs_tx** tx) {
  return Guarded([&]() -> int {
    if (tx == nullptr || id == nullptr || *id == '\0') return DBFS_EINVAL;
    for (const char* p = id; *p != '\0'; ++p) {
      if (*p < '0' || *p > '9') return DBFS_EINVAL;
    }
    std::string mount;
    int rc = FindMount(path, &mount);
    if (rc != DBFS_OK) return rc;
    *tx = new dbfs_tx{mount, id, ""};
    return DBFS_OK;
  });
}

int dbfs_tx_commit(dbfs_tx* tx, unsigned flags) {
  return Guarded([&]() -> int {
    if (tx == nullptr || (flags & ~DBFS_TX_DURABLE) != 0) return DBFS_EINVAL;
    std::string reply;
    const int rc = Request(tx->mount,
                           "dbfs.tx.commit:" + tx->id + ((flags & DBFS_TX_DURABLE) ? ":durable" : ""),
                           &reply);
    if (rc != DBFS_OK) {
      tx->detail = rc == DBFS_ESYSTEM ? std::strerror(errno) : dbfs_strerror(rc);
      return rc;
    }
    return EndReply(tx, reply);
  });
}

int dbfs_tx_abort(dbfs_tx* tx) {
  return Guarded([&]() -> int {
    if (tx == nullptr) return DBFS_EINVAL;
    std::string reply;
    const int rc = Request(tx->mount, "dbfs.tx.abort:" + tx->id, &reply);
    if (rc != DBFS_OK) {
      tx->detail = rc == DBFS_ESYSTEM ? std::strerror(errno) : dbfs_strerror(rc);
      return rc;
    }
    return EndReply(tx, reply);
  });
}

void dbfs_tx_free(dbfs_tx* tx) { delete tx; }

const char* dbfs_tx_id(const dbfs_tx* tx) { return tx ? tx->id.c_str() : ""; }
const char* dbfs_tx_mount(const dbfs_tx* tx) { return tx ? tx->mount.c_str() : ""; }
const char* dbfs_tx_detail(const dbfs_tx* tx) { return tx ? tx->detail.c_str() : ""; }

int dbfs_tx_status(const char* path, char** text) {
  return Guarded([&]() -> int {
    if (text == nullptr) return DBFS_EINVAL;
    std::string mount;
    int rc = FindMount(path, &mount);
    if (rc != DBFS_OK) return rc;
    return dbfs_control(mount.c_str(), "dbfs.tx.status", text, nullptr);
  });
}

const char* dbfs_strerror(int code) {
  switch (code) {
    case DBFS_OK: return "success";
    case DBFS_ECONFLICT: return "the transaction lost a conflict and was rolled back";
    case DBFS_EDEADLOCK: return "the transaction was a deadlock victim and was rolled back";
    case DBFS_ENOTDBFS: return "not a DBFS mount (or the daemon does not know the command)";
    case DBFS_ENOTX: return "no such open transaction";
    case DBFS_EBUSY: return "the process is already in a transaction";
    case DBFS_EPERM: return "not allowed";
    case DBFS_EINVAL: return "invalid argument";
    case DBFS_ESYSTEM: return "system error (see errno)";
    default: return "unknown error";
  }
}

}  // extern "C"
