#include "elle/protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
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
  std::string out;
  AppendResponse(&out, r);
  return out;
}

// MSG_LEN u32 | 0x80 | TX_ID u64 | status u8 | msg len u16 | msg | data
void AppendResponse(std::string* out, const Response& r) {
  const size_t n = std::min<size_t>(r.msg.size(), 0xffff);
  PutBE32(out, static_cast<uint32_t>(kHeader + 3 + n + r.data.size()));
  out->push_back(static_cast<char>(kResponse));
  PutBE64(out, r.tx);
  out->push_back(static_cast<char>(r.status));
  PutBE16(out, static_cast<uint16_t>(n));
  out->append(r.msg, 0, n);
  out->append(r.data);
}

uint8_t StatusByte(const Status& s) {
  switch (s.code()) {
    case Code::kOk: return kOk;
    case Code::kConflict: return kConflict;
    case Code::kNotFound: return kNotFound;
    case Code::kInvalid:
    case Code::kNotDir:
    case Code::kIsDir:
    case Code::kNameTooLong: return kBadRequest;
    case Code::kPermission:
    case Code::kAccess: return kDenied;
    default: return kError;
  }
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

Result<bool> FrameReader::Next(Frame* f) {
  const size_t avail = end_ - begin_;
  if (avail < 4) return false;
  const char* p = buf_.data() + begin_;
  const uint32_t len = GetBE32(p);
  if (len > kMaxFrame) return Status::Invalid("frame of " + std::to_string(len) + " bytes exceeds the 16 MiB limit");
  if (len < kHeader) return Status::Invalid("frame shorter than its header");
  if (avail < 4 + size_t{len}) {
    want_ = 4 + size_t{len};
    return false;
  }
  f->type = static_cast<uint8_t>(p[4]);
  f->tx = GetBE64(p + 5);
  f->payload.assign(p + 4 + kHeader, len - kHeader);
  begin_ += 4 + size_t{len};
  want_ = 0;
  if (begin_ == end_) begin_ = end_ = 0;
  return true;
}

Status FrameReader::Fill() {
  constexpr size_t kChunk = 64 << 10;
  // Room for the whole frame being assembled (up to kMaxFrame) and then some:
  // one read() may bring the frames behind it too.
  const size_t need = std::max(kChunk, want_ + kChunk / 4);
  if (begin_ == end_ && buf_.size() > 4 * kChunk) {
    buf_ = std::string();  // a big frame is done: do not keep its buffer
    begin_ = end_ = 0;
  }
  if (begin_ > 0 && buf_.size() - begin_ < need) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (buf_.size() < begin_ + need) buf_.resize(begin_ + need);
  for (;;) {
    const ssize_t r = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return Status::FromErrno(errno, "read");
    if (r == 0) {
      if (end_ == begin_) return Status::NotFound("connection closed");
      return Status::IOError(end_ - begin_ < 4 ? "truncated frame length" : "truncated frame");
    }
    end_ += static_cast<size_t>(r);
    return Status::Ok();
  }
}

Result<Frame> FrameReader::Read() {
  Frame f;
  for (;;) {
    DBFS_ASSIGN_OR_RETURN(bool got, Next(&f));
    if (got) return f;
    DBFS_RETURN_IF_ERROR(Fill());
  }
}

Session::~Session() {
  for (auto& [id, tx] : txs_) {
    if (!tx.poisoned) (void)backend_->Abort(tx.engine_id);
  }
}

void Session::Poison(TxState* tx, std::string why) {
  if (!tx->poisoned) (void)backend_->Abort(tx->engine_id);  // may have ended already: ignore
  tx->poisoned = true;
  tx->why = std::move(why);
}

Response Session::Handle(const Frame& f) {
  Response r;
  r.tx = f.tx;
  auto fail = [&](uint8_t status, std::string msg) {
    r.status = status;
    r.msg = std::move(msg);
    return r;
  };
  switch (f.type) {
    case kBeginTx: {
      if (f.payload.size() != 1 || static_cast<uint8_t>(f.payload[0]) > 1) {
        return fail(kBadRequest, "BEGIN_TX payload: 1 byte isolation (0 or 1)");
      }
      if (f.tx != 0) {
        if (auto it = txs_.find(f.tx); it != txs_.end()) {
          // The client lost track of its transactions. Frames pipelined after
          // this BEGIN are meant for a new transaction: they must not run in
          // the open one, so end it too.
          Poison(&it->second, "its TX_ID was reused by BEGIN_TX while open");
          return fail(kBadRequest, "BEGIN_TX: TX_ID " + std::to_string(f.tx) +
                                       " is an open transaction of this connection");
        }
      }
      if (txs_.size() >= static_cast<size_t>(kMaxOpenTx)) {
        return fail(kBadRequest, "too many open transactions on this connection (64)");
      }
      auto id = backend_->Begin(f.payload[0] == 0);
      if (!id.ok()) return fail(StatusByte(id.status()), id.status().message());
      const uint64_t visible = f.tx != 0 ? f.tx : *id;
      if (txs_.count(visible) != 0) {
        // A server-assigned id equal to an open alias of this connection.
        (void)backend_->Abort(*id);
        return fail(kError, "new transaction id collides with an open alias; retry or use aliases");
      }
      txs_[visible] = TxState{*id, false, {}};
      r.tx = visible;
      return r;
    }
    case kCommitTx:
    case kAbortTx: {
      auto it = txs_.find(f.tx);
      if (it == txs_.end()) return fail(kBadRequest, "unknown or foreign TX_ID");
      const TxState tx = std::move(it->second);
      txs_.erase(it);
      if (f.type == kAbortTx) {
        if (tx.poisoned) return r;
        Status s = backend_->Abort(tx.engine_id);
        if (!s.ok()) return fail(StatusByte(s), s.message());
        return r;
      }
      if (f.payload.size() != 1) {
        if (!tx.poisoned) (void)backend_->Abort(tx.engine_id);
        return fail(kBadRequest, "COMMIT_TX payload: 1 byte flags");
      }
      if (tx.poisoned) return fail(kConflict, "transaction was aborted: " + tx.why);
      auto c = backend_->Commit(tx.engine_id, (f.payload[0] & 1) != 0);
      if (!c.ok()) return fail(StatusByte(c.status()), c.status().message());
      if (c->rfind("ok", 0) == 0) {
        r.msg = *c;
        return r;
      }
      return fail(kConflict, *c);
    }
    case kWriteFile:
    case kReadFile:
    case kAppendFile: {
      TxState* tx = nullptr;
      if (f.tx != 0) {
        auto it = txs_.find(f.tx);
        if (it == txs_.end()) return fail(kBadRequest, "unknown or foreign TX_ID");
        tx = &it->second;
        if (tx->poisoned) return fail(kConflict, "transaction was aborted: " + tx->why);
      }
      // A failed operation ends its transaction: the engine may have ended
      // it already, later requests must never run outside it, and a
      // pipelined COMMIT_TX must not commit the batch without it.
      std::string_view path, bytes;
      Status s;
      if (!ParsePathPayload(f.payload, &path, &bytes)) {
        s = Status::Invalid("malformed path payload");
      } else if (f.type == kReadFile && !bytes.empty()) {
        s = Status::Invalid("READ_FILE takes only a path");
      } else {
        s = backend_->FileOp(tx != nullptr ? tx->engine_id : 0, f.type, path, bytes, &r.data);
      }
      if (s.ok()) return r;
      r.data.clear();
      const bool benign = f.type == kReadFile && s.code() == Code::kNotFound;
      if (tx != nullptr && !benign) Poison(tx, s.message());
      return fail(StatusByte(s), s.message());
    }
    case kAuth:
      return fail(kBadRequest, "already authenticated");
    default:
      return fail(kBadRequest, "unknown message type");
  }
}

void ServeConnection(int fd, const std::atomic<bool>& stop,
                     const std::function<bool(const Frame&, std::string* out)>& handle) {
  FrameReader reader(fd);
  std::string out;
  Frame f;
  while (!stop.load()) {
    // Every complete frame already buffered, then one write of the answers.
    bool open = true;
    Status bad;
    while (open) {
      auto got = reader.Next(&f);
      if (!got.ok()) {
        // Oversize or undersize length: say why, then close (the rest of
        // the stream cannot be framed).
        Response r;
        r.status = kBadRequest;
        r.msg = got.status().message();
        AppendResponse(&out, r);
        open = false;
        break;
      }
      if (!*got) break;
      open = handle(f, &out);
    }
    if (!out.empty()) {
      if (!WriteAll(fd, out).ok()) return;
      out.clear();
    }
    if (!open) return;
    // EOF, a truncated frame or an error: just close.
    if (!reader.Fill().ok()) return;
  }
}

Client::~Client() { Close(); }

void Client::Close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  reader_.reset();
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
  reader_ = std::make_unique<FrameReader>(fd);
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
  reader_ = std::make_unique<FrameReader>(fd);
  return Status::Ok();
}

Result<Response> Client::Call(uint8_t type, uint64_t tx, std::string_view payload) {
  DBFS_RETURN_IF_ERROR(Send(EncodeFrame(type, tx, payload)));
  return Receive();
}

Status Client::Send(std::string_view frames) {
  if (fd_ < 0) return Status::IOError("not connected");
  if (Status s = WriteAll(fd_, frames); !s.ok()) {
    Close();
    return s;
  }
  return Status::Ok();
}

Result<Response> Client::Receive() {
  if (fd_ < 0) return Status::IOError("not connected");
  auto f = reader_->Read();
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
