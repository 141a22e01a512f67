// -o metrics_port=PORT: a minimal HTTP server on 127.0.0.1:PORT answering
// GET /metrics with the Prometheus text format (fuse/metrics_export.h), one
// request per connection. Loopback only: the metrics are not for the network
// unless an operator forwards them.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "kvstore/status.h"

namespace dbfs {

class MetricsServer {
 public:
  using Producer = std::function<std::string()>;
  // Binds 127.0.0.1:port (an error if it is taken) and serves from a thread.
  static Result<std::unique_ptr<MetricsServer>> Start(int port, Producer produce);
  ~MetricsServer();  // Stop()
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  void Stop();

 private:
  MetricsServer(int listen_fd, int wake_fd[2], Producer produce);
  void Loop();
  void Serve(int fd);

  int listen_fd_;
  int wake_read_;
  int wake_write_;
  Producer produce_;
  std::thread thread_;
};

}  // namespace dbfs
