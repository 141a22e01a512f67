#include "elle/protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dbfs::elle::proto {

void PutBE16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}
void PutBE32(std::string* out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out->push_back(static_cast<char>(v >> s));
}
void PutBE64(std::string* out, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out->push_back(static_cast<char>(v >> s));
}
uint16_t GetBE16(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return static_cast<uint16_t>((u[0] << 8) | u[1]);
}
uint32_t GetBE32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return (uint32_t{u[0]} << 24) | (uint32_t{u[1]} << 16) | (uint32_t{u[2]} << 8) | u[3];
}
uint64_t GetBE64(const char* p) {
  return (uint64_t{GetBE32(p)} << 32) | GetBE32(p + 4);
}

std::string EncodeFrame(uint8_t type, uint64_t tx, std::string_view payload) {
  std::string out;
  out.reserve(4 + kHeader + payload.size());
  PutBE32(&out, static_cast<uint32_t>(kHeader + payload.size()));
  out.push_back(static_cast<char>(type));
  PutBE64(&out, tx);
  out.append(payload);
  return out;
}

std::string PathPayload(std::string_view path, std::string_view bytes) {
  std::string out;
  PutBE16(&out, static_cast<uint16_t>(path.size()));
  out.append(path);
  out.append(bytes);
  return out;
}

bool ParsePathPayload(std::string_view payload, std::string_view* path, std::string_view* bytes) {
  if (payload.size() < 2) return false;
  const size_t n = GetBE16(payload.data());
  if (payload.size() < 2 + n) return false;
  *path = payload.substr(2, n);
  *bytes = payload.substr(2 + n);
  return true;
}

std::string EncodeResponse(const Response& r) {
  std::string p;
  p.push_back(static_cast<char>(r.status));
  const size_t n = std::min<size_t>(r.msg.size(), 0xffff);
  PutBE16(&p, static_cast<uint16_t>(n));
  p.append(r.msg, 0, n);
  p.append(r.data);
  return EncodeFrame(kResponse, r.tx, p);
}

bool ParseResponse(const Frame& f, Response* out) {
  if (f.type != kResponse || f.payload.size() < 3) return false;
  const size_t n = GetBE16(f.payload.data() + 1);
  if (f.payload.size() < 3 + n) return false;
  out->status = static_cast<uint8_t>(f.payload[0]);
  out->tx = f.tx;
  out->msg = f.payload.substr(3, n);
  out->data = f.payload.substr(3 + n);
  return true;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Status::FromErrno(n < 0 ? errno : EPIPE, "send");
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

namespace {
// Reads exactly n bytes. Returns the count read before EOF (n on success), -1 on error.
ssize_t ReadFull(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(got);
}
}  // namespace

Result<Frame> ReadFrame(int fd) {
  char len_buf[4];
  ssize_t r = ReadFull(fd, len_buf, 4);
  if (r == 0) return Status::NotFound("connection closed");
  if (r != 4) return Status::IOError("truncated frame length");
  const uint32_t len = GetBE32(len_buf);
  if (len > kMaxFrame) return Status::Invalid("frame of " + std::to_string(len) + " bytes exceeds the 16 MiB limit");
  if (len < kHeader) return Status::Invalid("frame shorter than its header");
  std::string body(len, '\0');
  r = ReadFull(fd, body.data(), len);
  if (r != static_cast<ssize_t>(len)) return Status::IOError("truncated frame");
  Frame f;
  f.type = static_cast<uint8_t>(body[0]);
  f.tx = GetBE64(body.data() + 1);
  f.payload = body.substr(kHeader);
  return f;
}

Client::~Client() { Close(); }

void Client::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status Client::ConnectUnix(const std::string& path) {
  Close();
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return Status::Invalid("socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "connect " + path);
  }
  fd_ = fd;
  return Status::Ok();
}

Status Client::ConnectTcp(const std::string& host, int port) {
  Close();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) return Status::Invalid("bad address " + host);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "socket");
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::FromErrno(err, "connect " + host);
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  fd_ = fd;
  return Status::Ok();
}

Result<Response> Client::Call(uint8_t type, uint64_t tx, std::string_view payload) {
  if (fd_ < 0) return Status::IOError("not connected");
  if (Status s = WriteAll(fd_, EncodeFrame(type, tx, payload)); !s.ok()) {
    Close();
    return s;
  }
  auto f = ReadFrame(fd_);
  if (!f.ok()) {
    Close();
    return Status::IOError("connection lost: " + f.status().message());
  }
  Response r;
  if (!ParseResponse(*f, &r)) {
    Close();
    return Status::IOError("malformed response");
  }
  return r;
}

}  // namespace dbfs::elle::proto
