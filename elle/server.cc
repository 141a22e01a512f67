#include "elle/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <vector>

#include "elle/protocol.h"

namespace dbfs::elle {

namespace {

using proto::Response;

Status LoadOrCreateToken(const std::string& path, std::string* token) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
      char buf[256];
      const ssize_t n = ::read(fd, buf, sizeof(buf));
      ::close(fd);
      if (n < 0) return Status::FromErrno(errno, "read " + path);
      std::string t(buf, static_cast<size_t>(n));
      while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
      if (t.empty()) return Status::Invalid(path + " is empty");
      *token = t;
      return Status::Ok();
    }
    if (errno != ENOENT) return Status::FromErrno(errno, "open " + path);
    unsigned char raw[16];
    size_t got = 0;
    while (got < sizeof(raw)) {
      const ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::FromErrno(errno, "getrandom");
      got += static_cast<size_t>(n);
    }
    static constexpr char kHex[] = "0123456789abcdef";
    std::string t;
    for (unsigned char c : raw) {
      t.push_back(kHex[c >> 4]);
      t.push_back(kHex[c & 15]);
    }
    const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
      if (errno == EEXIST) continue;  // raced with another creator: read theirs
      return Status::FromErrno(errno, "create " + path);
    }
    t.push_back('\n');
    const bool ok = ::write(out, t.data(), t.size()) == static_cast<ssize_t>(t.size());
    const bool synced = ::fsync(out) == 0;
    ::close(out);
    if (!ok || !synced) return Status::IOError("cannot write " + path);
    t.pop_back();
    *token = t;
    return Status::Ok();
  }
  return Status::IOError("cannot load " + path);
}

bool TokenEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char d = 0;
  for (size_t i = 0; i < a.size(); ++i) d |= static_cast<unsigned char>(a[i] ^ b[i]);
  return d == 0;
}

// Splits a protocol path into its components; false if it is absolute,
// empty, or has an empty, "." or ".." component.
bool SplitPath(std::string_view path, std::vector<std::string_view>* parts) {
  if (path.empty() || path.front() == '/') return false;
  while (true) {
    const size_t slash = path.find('/');
    std::string_view c = path.substr(0, slash);
    if (c.empty() || c == "." || c == ".." || c.size() > kNameMax ||
        c.find('\0') != std::string_view::npos) {
      return false;
    }
    parts->push_back(c);
    if (slash == std::string_view::npos) return true;
    path.remove_prefix(slash + 1);
  }
}

// The engine side of one connection's requests (proto::Session does the
// protocol side: transaction ids, aliases, failed operations).
class FsBackend final : public proto::Backend {
 public:
  FsBackend(Filesystem* fs, Caller base, bool weaken) : fs_(fs), base_(base), weaken_(weaken) {}

  Result<uint64_t> Begin(bool serializable) override {
    TxOptions o;
    o.serializable = serializable;
    return fs_->BeginTx(base_, o);
  }
  Result<std::string> Commit(uint64_t tx, bool durable) override {
    DBFS_ASSIGN_OR_RETURN(TxOutcome out, fs_->CommitTx(base_, tx, durable));
    switch (out.kind) {
      case TxOutcome::Kind::kCommitted: return "ok " + std::to_string(out.csn);
      case TxOutcome::Kind::kConflict: return "conflict " + out.detail;
      case TxOutcome::Kind::kDeadlock: return "deadlock " + out.detail;
      case TxOutcome::Kind::kAborted: break;
    }
    return std::string("aborted");
  }
  Status Abort(uint64_t tx) override { return fs_->AbortTx(base_, tx).status(); }
  Status FileOp(uint64_t tx, uint8_t type, std::string_view path, std::string_view bytes,
                std::string* out) override {
    std::vector<std::string_view> parts;
    if (!SplitPath(path, &parts)) return Status::Invalid("invalid path");
    Caller c = base_;
    c.tx = weaken_ ? 0 : tx;
    return FileOp(c, type, parts, bytes, out);
  }

 private:
  // Looks up `name` in `parent`, dropping the lookup reference right away.
  Result<Attr> Lookup(const Caller& c, uint64_t parent, std::string_view name) {
    auto a = fs_->Lookup(c, parent, name);
    if (a.ok()) fs_->Forget(a->ino, 1);
    return a;
  }

  Status FileOp(const Caller& c, uint8_t type, const std::vector<std::string_view>& parts,
                std::string_view bytes, std::string* out) {
    uint64_t dir = kRootIno;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      DBFS_ASSIGN_OR_RETURN(Attr a, Lookup(c, dir, parts[i]));
      if (!S_ISDIR(a.mode)) return Status(Code::kNotDir, "not a directory");
      dir = a.ino;
    }
    const std::string_view name = parts.back();
    auto found = Lookup(c, dir, name);
    if (!found.ok() && (found.status().code() != Code::kNotFound || type == proto::kReadFile)) {
      return found.TakeStatus();
    }
    if (found.ok() && !S_ISREG(found->mode)) return Status(Code::kIsDir, "not a regular file");
    uint64_t ino = 0, fh = 0;
    if (found.ok()) {
      ino = found->ino;
      int flags = type == proto::kReadFile ? O_RDONLY : O_WRONLY;
      if (type == proto::kWriteFile) flags |= O_TRUNC;
      DBFS_ASSIGN_OR_RETURN(fh, fs_->Open(c, ino, flags));
    } else {
      DBFS_ASSIGN_OR_RETURN(Filesystem::Created cr,
                            fs_->Create(c, dir, name, S_IFREG | 0644, O_WRONLY | O_CREAT | O_EXCL));
      fs_->Forget(cr.attr.ino, 1);
      ino = cr.attr.ino;
      fh = cr.fh;
    }
    Status s = Status::Ok();
    if (type == proto::kReadFile) {
      constexpr size_t kChunk = 1 << 16;
      uint64_t off = 0;
      while (s.ok()) {
        if (out->size() + kChunk > proto::kMaxFrame - 64) {
          s = Status(Code::kTooBig, "file too large for one frame");
          break;
        }
        out->resize(off + kChunk);
        auto n = fs_->Read(c, ino, fh, off, kChunk, out->data() + off);
        if (!n.ok()) {
          s = n.TakeStatus();
          break;
        }
        off += *n;
        out->resize(off);
        if (*n == 0) break;
      }
    } else {
      uint64_t off = 0;
      if (type == proto::kAppendFile) {
        auto a = fs_->GetAttr(c, ino);
        if (a.ok()) {
          off = a->size;
        } else {
          s = a.TakeStatus();
        }
      }
      while (s.ok() && !bytes.empty()) {
        auto n = fs_->Write(c, ino, fh, off, bytes.data(), bytes.size());
        if (!n.ok()) {
          s = n.TakeStatus();
        } else if (*n == 0) {
          s = Status::IOError("short write");
        } else {
          off += *n;
          bytes.remove_prefix(*n);
        }
      }
    }
    if (type != proto::kReadFile) {
      Status fl = fs_->Flush(ino, fh);
      if (s.ok()) s = fl;
    }
    Status rel = fs_->Release(ino, fh);
    if (s.ok()) s = rel;
    return s;
  }

  Filesystem* const fs_;
  const Caller base_;
  const bool weaken_;
};

// A connection's engine and protocol state (after AUTH on TCP).
struct ConnState {
  ConnState(Filesystem* fs, Caller base, bool weaken) : backend(fs, base, weaken), session(&backend) {}
  FsBackend backend;
  proto::Session session;  // declared after backend: aborts through it when destroyed
};

}  // namespace

Server::Server(Filesystem* fs, ServerOptions options) : fs_(fs), opts_(std::move(options)) {}

Result<std::unique_ptr<Server>> Server::Start(Filesystem* fs, const ServerOptions& options) {
  std::unique_ptr<Server> s(new Server(fs, options));
  DBFS_RETURN_IF_ERROR(LoadOrCreateToken(options.runtime_dir + "/elle.token", &s->token_));
  DBFS_RETURN_IF_ERROR(s->Listen());
  if (pipe2(s->wake_, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  s->acceptor_ = std::thread([srv = s.get()] { srv->AcceptLoop(); });
  spdlog::info("elle protocol server on {}{}{}", s->sock_path_,
               options.tcp_port > 0 ? " and 127.0.0.1:" + std::to_string(options.tcp_port) : "",
               options.weaken ? " (WEAKENED ISOLATION: test only)" : "");
  return s;
}

Status Server::Listen() {
  sock_path_ = opts_.runtime_dir + "/elle.sock";
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  if (sock_path_.size() >= sizeof(un.sun_path)) {
    // Not worth failing the mount for: serve TCP only (if asked).
    spdlog::warn("elle protocol: socket path {} is too long for a Unix socket; not serving it",
                 sock_path_);
    sock_path_.clear();
    return ListenTcp();
  }
  std::memcpy(un.sun_path, sock_path_.c_str(), sock_path_.size() + 1);
  unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (unix_fd_ < 0) return Status::FromErrno(errno, "socket");
  ::unlink(sock_path_.c_str());  // left behind by a daemon that died
  // Bind with a restrictive umask so the socket is never reachable by others.
  const mode_t old = ::umask(0177);
  const int b = ::bind(unix_fd_, reinterpret_cast<sockaddr*>(&un), sizeof(un));
  const int bind_err = errno;
  ::umask(old);
  if (b != 0) return Status::FromErrno(bind_err, "bind " + sock_path_);
  ::chmod(sock_path_.c_str(), 0600);
  if (::listen(unix_fd_, 128) != 0) return Status::FromErrno(errno, "listen " + sock_path_);
  return ListenTcp();
}

Status Server::ListenTcp() {
  if (opts_.tcp_port > 0) {
    if (opts_.tcp_port > 65535) return Status::Invalid("elle_port out of range");
    tcp_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (tcp_fd_ < 0) return Status::FromErrno(errno, "socket");
    int one = 1;
    setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(static_cast<uint16_t>(opts_.tcp_port));
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(tcp_fd_, reinterpret_cast<sockaddr*>(&in), sizeof(in)) != 0) {
      return Status::FromErrno(errno, "bind 127.0.0.1:" + std::to_string(opts_.tcp_port));
    }
    if (::listen(tcp_fd_, 128) != 0) return Status::FromErrno(errno, "listen");
  }
  return Status::Ok();
}

void Server::ReapLocked(bool all) {
  for (auto it = conns_.begin(); it != conns_.end();) {
    Conn* c = it->get();
    if (all || c->done.load()) {
      if (all) ::shutdown(c->fd, SHUT_RDWR);
      if (c->thread.joinable()) c->thread.join();
      ::close(c->fd);
      it = conns_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd pfds[3] = {{wake_[0], POLLIN, 0}, {unix_fd_, POLLIN, 0}, {tcp_fd_, POLLIN, 0}};
    const int n = ::poll(pfds, tcp_fd_ >= 0 ? 3 : 2, 1000);
    if (stopping_.load()) break;
    std::lock_guard g(mu_);
    ReapLocked(false);
    if (n <= 0) continue;
    for (int i = 1; i < 3; ++i) {
      if (pfds[i].fd < 0 || !(pfds[i].revents & POLLIN)) continue;
      // The listening sockets are non-blocking: take every pending connection.
      for (int fd; (fd = ::accept4(pfds[i].fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) {
        if (conns_.size() >= static_cast<size_t>(proto::kMaxConnections)) {
          ReapLocked(false);
        }
        if (conns_.size() >= static_cast<size_t>(proto::kMaxConnections)) {
          Response r;
          r.status = proto::kError;
          r.msg = "too many connections (512)";
          (void)proto::WriteAll(fd, proto::EncodeResponse(r));
          ::close(fd);
          continue;
        }
        auto conn = std::make_unique<Conn>();
        conn->fd = fd;
        conn->tcp = i == 2;
        Conn* raw = conn.get();
        conns_.push_back(std::move(conn));
        raw->thread = std::thread([this, raw] {
          Serve(raw);
          raw->done.store(true);
        });
      }
    }
  }
}

void Server::Serve(Conn* conn) {
  const int fd = conn->fd;
  Caller base;
  bool authed = !conn->tcp;
  if (!conn->tcp) {
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return;
    base.uid = cred.uid;
    base.gid = cred.gid;
  } else {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  std::optional<ConnState> state;
  if (authed) state.emplace(fs_, base, opts_.weaken);
  auto error = [](std::string* out, uint8_t status, uint64_t tx, std::string msg) {
    Response r;
    r.status = status;
    r.tx = tx;
    r.msg = std::move(msg);
    proto::AppendResponse(out, r);
  };
  proto::ServeConnection(fd, stopping_, [&](const proto::Frame& f, std::string* out) {
    if (!authed) {
      if (f.type != proto::kAuth) {
        error(out, proto::kDenied, f.tx, "AUTH must be the first request");
        return false;
      }
      if (!TokenEquals(f.payload, token_)) {
        error(out, proto::kDenied, 0, "bad token");
        return false;
      }
      authed = true;
      base.uid = 0;
      base.gid = 0;
      state.emplace(fs_, base, opts_.weaken);
      error(out, proto::kOk, 0, "");
      return true;
    }
    proto::AppendResponse(out, state->session.Handle(f));
    return true;
  });
}

void Server::Stop() {
  if (stopped_) return;
  stopped_ = true;
  stopping_.store(true);
  if (wake_[1] >= 0) {
    const char c = 'q';
    [[maybe_unused]] ssize_t n = ::write(wake_[1], &c, 1);
  }
  if (acceptor_.joinable()) acceptor_.join();
  {
    std::lock_guard g(mu_);
    ReapLocked(true);
  }
  for (int* fd : {&unix_fd_, &tcp_fd_, &wake_[0], &wake_[1]}) {
    if (*fd >= 0) ::close(*fd);
    *fd = -1;
  }
  if (!sock_path_.empty()) ::unlink(sock_path_.c_str());
  // The runtime directory lives while the mount does: a new mount makes a
  // new token. (rmdir fails, harmlessly, if someone put more files there.)
  ::unlink((opts_.runtime_dir + "/elle.token").c_str());
  ::rmdir(opts_.runtime_dir.c_str());
}

Server::~Server() { Stop(); }

}  // namespace dbfs::elle
