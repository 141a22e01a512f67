#include "tools/lib/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace dbfs {

namespace {

constexpr int kRequestTimeoutMs = 2000;
constexpr size_t kMaxRequest = 8192;

void SendAll(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    const ssize_t n = send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the client went away
    off += static_cast<size_t>(n);
  }
}

std::string Response(int code, const char* reason, const char* type, const std::string& body) {
  return fmt::format(
      "HTTP/1.0 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
      code, reason, type, body.size(), body);
}

}  // namespace

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(int port, Producer produce) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "metrics socket");
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, 16) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno(err, fmt::format("metrics port 127.0.0.1:{}", port));
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    const int err = errno;
    close(fd);
    return Status::FromErrno(err, "metrics pipe");
  }
  spdlog::info("metrics at http://127.0.0.1:{}/metrics", port);
  return std::unique_ptr<MetricsServer>(new MetricsServer(fd, wake, std::move(produce)));
}

MetricsServer::MetricsServer(int listen_fd, int wake_fd[2], Producer produce)
    : listen_fd_(listen_fd),
      wake_read_(wake_fd[0]),
      wake_write_(wake_fd[1]),
      produce_(std::move(produce)),
      thread_([this] { Loop(); }) {}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (!thread_.joinable()) return;
  const char b = 'x';
  [[maybe_unused]] ssize_t n = write(wake_write_, &b, 1);
  thread_.join();
  close(listen_fd_);
  close(wake_read_);
  close(wake_write_);
}

void MetricsServer::Loop() {
  for (;;) {
    pollfd p[2] = {{listen_fd_, POLLIN, 0}, {wake_read_, POLLIN, 0}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      spdlog::error("metrics server: poll: {}", std::strerror(errno));
      return;
    }
    if (p[1].revents != 0) return;
    if ((p[0].revents & POLLIN) == 0) continue;
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    Serve(fd);
    close(fd);
  }
}

// One request: read the head (bounded in size and time), answer, close.
void MetricsServer::Serve(int fd) {
  std::string req;
  char buf[1024];
  while (req.find("\r\n\r\n") == std::string::npos && req.find("\n\n") == std::string::npos &&
         req.size() < kMaxRequest) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, kRequestTimeoutMs) <= 0) return;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return;
    req.append(buf, static_cast<size_t>(n));
  }
  const size_t eol = req.find_first_of("\r\n");
  const std::string line = req.substr(0, eol);
  if (line.rfind("GET /metrics ", 0) == 0 || line == "GET /metrics") {
    SendAll(fd, Response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", produce_()));
  } else if (line.rfind("GET ", 0) == 0) {
    SendAll(fd, Response(404, "Not Found", "text/plain", "only /metrics is here\n"));
  } else {
    SendAll(fd, Response(405, "Method Not Allowed", "text/plain", "GET /metrics\n"));
  }
}

}  // namespace dbfs
