// The Elle transaction protocol (DESIGN.md §6, issue 5): framing shared by the
// server (elle/server.h, inside the daemon) and the client (elle/runner.h).
//
// Every frame, in both directions:
//
//   MSG_LEN  u32 big-endian   length of everything after this field (>= 9)
//   MSG_TYPE u8
//   TX_ID    u64 big-endian   0 = none (autocommit for file operations)
//   PAYLOAD  MSG_LEN - 9 bytes
//
// Requests (client -> server):
//   0x01 BEGIN_TX    payload: u8 isolation (0 serializable, 1 snapshot).
//                    TX_ID 0: the server picks the id, the reply carries it.
//                    TX_ID != 0: an alias the client picks (pipelining): valid
//                    on this connection only, every later frame may name the
//                    transaction by it, and responses carry it. BEGIN_TX with
//                    an alias that is still open is refused (bad request) and
//                    aborts the open transaction: frames meant for the refused
//                    one must not run in it.
//   0x02 COMMIT_TX   payload: u8 flags (bit0: durable)
//   0x03 ABORT_TX    payload: empty
//   0x04 WRITE_FILE  payload: u16 path len | path | bytes (replace the content)
//   0x05 READ_FILE   payload: u16 path len | path          (reply payload: content)
//   0x06 APPEND_FILE payload: u16 path len | path | bytes
//   0x07 AUTH        payload: the token (VOLUME/elle.token); first frame on TCP
//
// Response (server -> client), MSG_TYPE 0x80, TX_ID of the request (of the
// new transaction for BEGIN_TX with TX_ID 0), one per request, in order:
//   PAYLOAD = u8 status | u16 msg len | msg | data
//   status: 0 ok, 1 conflict, 2 not found, 3 bad request, 4 denied, 5 error
//
// Pipelining: a client may send many frames before reading any response
// (e.g. BEGIN_TX with an alias, the file operations, COMMIT_TX in one write).
// A failed file operation (other than READ_FILE of a missing file) aborts its
// transaction, so the later frames of the batch get conflict responses and
// the COMMIT_TX reports conflict: a batch commits all of its operations or none.
//
// Limits: a frame is at most kMaxFrame (16 MiB) after MSG_LEN; a connection
// has at most kMaxOpenTx open transactions. Paths are relative to the mount
// root, '/'-separated, without "", "." or ".." components.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "kvstore/status.h"

namespace dbfs::elle::proto {

inline constexpr uint32_t kMaxFrame = 16u << 20;  // MSG_LEN limit (bytes after MSG_LEN)
inline constexpr uint32_t kHeader = 9;            // MSG_TYPE + TX_ID
inline constexpr int kMaxOpenTx = 64;             // per connection
inline constexpr int kMaxConnections = 512;

enum Type : uint8_t {
  kBeginTx = 0x01,
  kCommitTx = 0x02,
  kAbortTx = 0x03,
  kWriteFile = 0x04,
  kReadFile = 0x05,
  kAppendFile = 0x06,
  kAuth = 0x07,
  kResponse = 0x80,
};

enum StatusCode : uint8_t {
  kOk = 0,
  kConflict = 1,
  kNotFound = 2,
  kBadRequest = 3,
  kDenied = 4,
  kError = 5,
};

struct Frame {
  uint8_t type = 0;
  uint64_t tx = 0;
  std::string payload;
};

struct Response {
  uint8_t status = kOk;
  uint64_t tx = 0;
  std::string msg;
  std::string data;
};

void PutBE16(std::string* out, uint16_t v);
void PutBE32(std::string* out, uint32_t v);
void PutBE64(std::string* out, uint64_t v);
uint16_t GetBE16(const char* p);
uint32_t GetBE32(const char* p);
uint64_t GetBE64(const char* p);

// The bytes of a frame.
std::string EncodeFrame(uint8_t type, uint64_t tx, std::string_view payload);
// A file operation's payload: u16 path len | path | bytes.
std::string PathPayload(std::string_view path, std::string_view bytes = {});
// Splits a path payload. False when malformed.
bool ParsePathPayload(std::string_view payload, std::string_view* path, std::string_view* bytes);
std::string EncodeResponse(const Response& r);
// Appends the response's frame to *out (a batch of responses).
void AppendResponse(std::string* out, const Response& r);
// The protocol status byte for an engine status.
uint8_t StatusByte(const Status& s);
// Parses a response frame's payload.
bool ParseResponse(const Frame& f, Response* out);

// Blocking I/O on a stream socket. ReadFrame: NotFound on a clean EOF before
// the first byte, IOError on a truncated frame or error, Invalid on an
// oversize length.
Status WriteAll(int fd, std::string_view data);
Result<Frame> ReadFrame(int fd);

// Buffered framing of one stream socket: one read() may bring several
// frames, which are then taken out of the buffer without further syscalls.
// Not thread-safe.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  // Takes the next complete buffered frame into *f: true if there was one,
  // false if more bytes are needed; Invalid on an oversize or undersize length
  // (the stream cannot be framed any more).
  Result<bool> Next(Frame* f);
  // One read() into the buffer. NotFound on a clean EOF between frames,
  // IOError on EOF inside a frame or a read error.
  Status Fill();
  // Blocking: the next frame, buffered or read (errors as ReadFrame).
  Result<Frame> Read();
  bool buffered() const { return end_ > begin_; }

 private:
  const int fd_;
  std::string buf_;
  size_t begin_ = 0, end_ = 0;  // the unconsumed bytes are buf_[begin_, end_)
  size_t want_ = 0;             // bytes the incomplete frame at begin_ needs
};

// What a Session runs requests against: the daemon's engine
// (elle/server.cc), or a fake in tests. Called from one connection's thread.
class Backend {
 public:
  virtual ~Backend() = default;
  // Starts a transaction; returns its engine id (never 0).
  virtual Result<uint64_t> Begin(bool serializable) = 0;
  // Commits: a message starting with "ok" when committed, else the reason
  // it was not (a conflict; the transaction is gone either way).
  virtual Result<std::string> Commit(uint64_t tx, bool durable) = 0;
  virtual Status Abort(uint64_t tx) = 0;
  // WRITE_FILE, READ_FILE (content into *out) or APPEND_FILE of `path`
  // (unvalidated), in transaction `tx` (engine id; 0: autocommit).
  virtual Status FileOp(uint64_t tx, uint8_t type, std::string_view path, std::string_view bytes,
                        std::string* out) = 0;
};

// One connection's transactions and request handling (everything but AUTH).
// A connection names a transaction by its engine id (BEGIN_TX with TX_ID 0)
// or by its own alias; other connections' transactions are unknown to it.
// Destruction aborts the open transactions. Not thread-safe.
class Session {
 public:
  explicit Session(Backend* backend) : backend_(backend) {}
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  Response Handle(const Frame& f);
  size_t open_transactions() const { return txs_.size(); }

 private:
  struct TxState {
    uint64_t engine_id = 0;
    bool poisoned = false;  // aborted by a failed operation: only COMMIT/ABORT remain
    std::string why;
  };
  // Ends the transaction in the engine and keeps it as poisoned.
  void Poison(TxState* tx, std::string why);

  Backend* const backend_;
  std::map<uint64_t, TxState> txs_;  // by the id this connection uses
};

// Serves one connection until EOF, an error, `stop`, or `handle` returning
// false: reads with a FrameReader, hands every complete frame to `handle`,
// which appends its response(s) to *out, and sends the responses of one
// batch with one write before blocking in read again. An oversize or
// undersize length is answered (bad request) and closes the connection, as
// does a truncated frame.
void ServeConnection(int fd, const std::atomic<bool>& stop,
                     const std::function<bool(const Frame&, std::string* out)>& handle);

// A blocking client of one connection (not thread-safe).
class Client {
 public:
  Client() = default;
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  Status ConnectUnix(const std::string& path);
  Status ConnectTcp(const std::string& host, int port);
  void Close();
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  // Sends one request and waits for its response. A transport error closes
  // the connection.
  Result<Response> Call(uint8_t type, uint64_t tx, std::string_view payload);

  // Pipelining: Send writes frames (e.g. several EncodeFrame()s in one
  // string) without waiting; Receive returns the next response. A transport
  // error closes the connection.
  Status Send(std::string_view frames);
  Result<Response> Receive();

 private:
  int fd_ = -1;
  std::unique_ptr<FrameReader> reader_;
};

}  // namespace dbfs::elle::proto
