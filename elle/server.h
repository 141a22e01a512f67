// The Elle protocol server (elle/protocol.h), run by the mount daemon next to
// the FUSE session: explicit DBFS transactions (Filesystem::BeginTx) driven
// over a socket, for `dbfs elle run` and other test clients.
//
// Listens on RUNTIME_DIR/elle.sock (always; mode 0600; the peer's SO_PEERCRED
// uid/gid is the caller, no token needed) and, when tcp_port > 0, on
// 127.0.0.1:tcp_port only, where AUTH with the token of RUNTIME_DIR/elle.token
// (created, 32 random hex digits, mode 0600, if missing) must come first and
// the caller is then uid 0. One thread per connection, at most 512
// connections, at most 64 open transactions per connection; a connection that
// ends aborts its open transactions. Clients may pipeline (BEGIN_TX with a
// connection-local alias, elle/protocol.h): each connection reads through a
// buffer and answers all the complete frames of one read with one write
// (proto::ServeConnection; request handling is proto::Session). Bad input (oversize, truncated, unknown
// type, malformed payload, foreign TX_ID) is answered with an error response
// or by closing the connection.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "fs/filesystem.h"
#include "kvstore/status.h"

namespace dbfs::elle {

struct ServerOptions {
  std::string runtime_dir;  // elle.sock and elle.token live there (fs/runtime_dir.h)
  int tcp_port = 0;     // > 0: also listen on 127.0.0.1:tcp_port
  // Test-only negative control: file operations run as autocommit operations
  // instead of inside their transaction, so isolation is broken on purpose.
  bool weaken = false;
};

class Server {
 public:
  // Creates the token if needed, binds the sockets and starts accepting.
  static Result<std::unique_ptr<Server>> Start(Filesystem* fs, const ServerOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Stops accepting, closes every connection (aborting its transactions) and
  // removes the socket file. Idempotent. Must be called before fs is closed.
  void Stop();

  const std::string& socket_path() const { return sock_path_; }

 private:
  struct Conn {
    int fd = -1;
    bool tcp = false;
    std::thread thread;
    std::atomic<bool> done{false};
  };

  Server(Filesystem* fs, ServerOptions options);
  Status Listen();
  Status ListenTcp();
  void AcceptLoop();
  void Serve(Conn* conn);
  void ReapLocked(bool all);

  Filesystem* const fs_;
  const ServerOptions opts_;
  std::string token_;
  std::string sock_path_;
  int unix_fd_ = -1;
  int tcp_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  bool stopped_ = false;
  std::mutex mu_;
  std::list<std::unique_ptr<Conn>> conns_;
};

}  // namespace dbfs::elle
