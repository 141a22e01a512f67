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
//   0x01 BEGIN_TX    payload: u8 isolation (0 serializable, 1 snapshot); TX_ID 0.
//                    The reply's TX_ID is the new transaction.
//   0x02 COMMIT_TX   payload: u8 flags (bit0: durable)
//   0x03 ABORT_TX    payload: empty
//   0x04 WRITE_FILE  payload: u16 path len | path | bytes (replace the content)
//   0x05 READ_FILE   payload: u16 path len | path          (reply payload: content)
//   0x06 APPEND_FILE payload: u16 path len | path | bytes
//   0x07 AUTH        payload: the token (VOLUME/elle.token); first frame on TCP
//
// Response (server -> client), MSG_TYPE 0x80, TX_ID of the request (of the
// new transaction for BEGIN_TX):
//   PAYLOAD = u8 status | u16 msg len | msg | data
//   status: 0 ok, 1 conflict, 2 not found, 3 bad request, 4 denied, 5 error
//
// Limits: a frame is at most kMaxFrame (16 MiB) after MSG_LEN; a connection
// has at most kMaxOpenTx open transactions. Paths are relative to the mount
// root, '/'-separated, without "", "." or ".." components.
#pragma once

#include <cstdint>
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
// Parses a response frame's payload.
bool ParseResponse(const Frame& f, Response* out);

// Blocking I/O on a stream socket. ReadFrame: NotFound on a clean EOF before
// the first byte, IOError on a truncated frame or error, Invalid on an
// oversize length.
Status WriteAll(int fd, std::string_view data);
Result<Frame> ReadFrame(int fd);

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

 private:
  int fd_ = -1;
};

}  // namespace dbfs::elle::proto
