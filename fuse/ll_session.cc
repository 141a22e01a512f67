#include "fuse/ll_session.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "fuse/ll_fuse.h"
#include "fuse/ll_offload.h"
#include "fuse/ll_ops.h"

namespace dbfs::fuse {

namespace {

// ---------------------------------------------------------------- logging

std::mutex g_fuse_error_mu;
std::string g_fuse_error;  // last error libfuse logged, for error messages

// The transport of the session being served (one per process), told when
// libfuse logs that its rings failed to start: that is its only report.
std::atomic<Transport*> g_transport{nullptr};
constexpr std::string_view kRingStartFailed = "fuse: failed to start io-uring";

std::string LastFuseError() {
  std::lock_guard<std::mutex> g(g_fuse_error_mu);
  return g_fuse_error;
}

// libfuse's log messages (mount errors, -d request tracing) go to our log.
void FuseLog(enum fuse_log_level level, const char* fmt, va_list ap) {
  char buf[2048];
  vsnprintf(buf, sizeof(buf), fmt, ap);
  std::string msg(buf);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == '\r')) msg.pop_back();
  spdlog::level::level_enum l = spdlog::level::debug;
  if (level <= FUSE_LOG_ERR) {
    l = spdlog::level::err;
    std::lock_guard<std::mutex> g(g_fuse_error_mu);
    g_fuse_error = msg;
  } else if (level == FUSE_LOG_WARNING) {
    l = spdlog::level::warn;
  } else if (level <= FUSE_LOG_INFO) {
    l = spdlog::level::info;
  }
  spdlog::log(l, "libfuse: {}", msg);
  if (msg.compare(0, kRingStartFailed.size(), kRingStartFailed) == 0) {
    if (Transport* t = g_transport.load(); t != nullptr && !t->OnRingStartFailed(msg)) {
      fuse_session_exit(t->session());
    }
  }
}

// ---------------------------------------------------------------- signals

// The shutdown signals. They are blocked in every thread but the one running
// the session loop, so the loop thread's sem_wait is what they interrupt.
sigset_t ShutdownSignalSet() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  return set;
}

std::atomic<fuse_session*> g_session{nullptr};
std::atomic<int> g_wake_fd{-1};

extern "C" void OnShutdownSignal(int) {
  const int saved = errno;
  // Async-signal-safe: fuse_session_exit only sets a flag; the write wakes
  // the watcher, which does the rest on a normal thread.
  if (fuse_session* se = g_session.load()) fuse_session_exit(se);
  const int fd = g_wake_fd.load();
  if (fd >= 0) {
    const char c = 's';
    [[maybe_unused]] ssize_t r = write(fd, &c, 1);
  }
  errno = saved;
}

// Installs the SIGTERM/SIGINT/SIGHUP handlers (session exit) for its lifetime
// and runs a watcher thread that, on such a signal, ends every lock wait so
// that no request thread keeps the loop from finishing. Restores the previous
// handlers on destruction. One at a time per process.
class ShutdownSignals {
 public:
  ShutdownSignals(fuse_session* se, AdapterLocks* locks) : locks_(locks) {
    if (pipe2(fds_, O_CLOEXEC) != 0) {
      status_ = Status::FromErrno(errno, "pipe");
      return;
    }
    // The handler must never block on a full pipe.
    fcntl(fds_[1], F_SETFL, fcntl(fds_[1], F_GETFL) | O_NONBLOCK);
    g_session.store(se);
    g_wake_fd.store(fds_[1]);
    struct sigaction sa {};
    sa.sa_handler = OnShutdownSignal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &sa, &old_[i]);
    struct sigaction ign {};
    ign.sa_handler = SIG_IGN;
    sigemptyset(&ign.sa_mask);
    sigaction(SIGPIPE, &ign, &old_pipe_);
    installed_ = true;
    watcher_ = std::thread([this] { Watch(); });
  }

  ~ShutdownSignals() {
    if (watcher_.joinable()) {
      const char c = 'q';
      // The pipe is nearly empty (one byte per signal); the watcher drains it.
      while (write(fds_[1], &c, 1) < 0 && (errno == EINTR || errno == EAGAIN)) {
      }
      watcher_.join();
    }
    if (installed_) {
      for (size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &old_[i], nullptr);
      sigaction(SIGPIPE, &old_pipe_, nullptr);
    }
    g_wake_fd.store(-1);
    g_session.store(nullptr);
    for (int fd : fds_) {
      if (fd >= 0) close(fd);
    }
  }
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

  const Status& status() const { return status_; }

 private:
  static constexpr std::array<int, 3> kSignals = {SIGTERM, SIGINT, SIGHUP};

  void Watch() {
    for (;;) {
      char c = 0;
      const ssize_t n = read(fds_[0], &c, 1);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0 || c == 'q') return;
      spdlog::info("shutdown signal received: unmounting");
      locks_->Shutdown();
    }
  }

  AdapterLocks* locks_;
  int fds_[2] = {-1, -1};
  Status status_;
  bool installed_ = false;
  std::array<struct sigaction, 3> old_{};
  struct sigaction old_pipe_ {};
  std::thread watcher_;
};

// ---------------------------------------------------------------- session

// Escapes a value for libfuse's comma-separated -o list.
std::string EscapeOptionValue(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == ',' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out;
}

// The argv libfuse parses: session options and kernel mount options.
class FuseArgs {
 public:
  FuseArgs(const SessionOptions& o, bool io_uring) {
    std::string opts = "fsname=dbfs:" + EscapeOptionValue(o.source) + ",subtype=dbfs";
    if (o.default_permissions) opts += ",default_permissions";
    if (o.allow_other) opts += ",allow_other";
    if (o.noatime) opts += ",noatime";
    // libfuse mounts nodev,nosuid unless told otherwise.
    opts += o.dev ? ",dev" : ",nodev";
    opts += o.suid ? ",suid" : ",nosuid";
    if (o.noexec) opts += ",noexec";
    if (o.read_only) opts += ",ro";
    if (io_uring) {
      // A request holds its ring entry until its reply, and the kernel
      // queues a request only on the ring of its caller's CPU: requests that
      // wait (locks, --lock transactions) each hold one, and once a ring's
      // entries are all held, the request that would end the waits cannot
      // even arrive. libfuse's default of 8 per CPU deadlocked 16 --lock
      // transactions on 2 CPUs (integration_uring.tx); 64 per CPU matches
      // the classic loop's 64 workers. Entries' buffers are max_write each,
      // touched only as far as requests use them.
      const unsigned depth = o.io_uring_q_depth > 0 ? o.io_uring_q_depth : kDefaultUringQueueDepth;
      opts += ",io_uring,io_uring_q_depth=" + std::to_string(depth);
    }
    strings_ = {"dbfs-mount", "-o", opts};
    if (o.debug) strings_.push_back("-d");
    for (std::string& s : strings_) argv_.push_back(s.data());
    argv_.push_back(nullptr);
    args_ = FUSE_ARGS_INIT(static_cast<int>(strings_.size()), argv_.data());
  }
  ~FuseArgs() { fuse_opt_free_args(&args_); }
  FuseArgs(const FuseArgs&) = delete;
  FuseArgs& operator=(const FuseArgs&) = delete;

  fuse_args* get() { return &args_; }
  std::string ToString() const {
    std::string s;
    for (const std::string& a : strings_) s += (s.empty() ? "" : " ") + a;
    return s;
  }

 private:
  std::vector<std::string> strings_;
  std::vector<char*> argv_;
  fuse_args args_{};
};

struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
using SessionPtr = std::unique_ptr<fuse_session, SessionDeleter>;

// For its lifetime, the engine drops kernel caches (transaction boundaries)
// through the adapter's Invalidator on session `se`.
class InvalidationScope {
 public:
  InvalidationScope(Adapter* adapter, fuse_session* se) : adapter_(adapter) {
    Invalidator* inv = &adapter_->invalidator();
    inv->Attach(se);
    adapter_->fs().SetInvalidator([inv](uint64_t ino, bool sync) { inv->Invalidate(ino, sync); });
    adapter_->fs().SetEntryInvalidator([inv](const std::set<std::pair<uint64_t, std::string>>& es) {
      inv->InvalidateEntries(es, std::chrono::seconds(2));
    });
  }
  ~InvalidationScope() {
    adapter_->fs().SetInvalidator(nullptr);
    adapter_->fs().SetEntryInvalidator(nullptr);
    adapter_->invalidator().Detach();
  }
  InvalidationScope(const InvalidationScope&) = delete;
  InvalidationScope& operator=(const InvalidationScope&) = delete;

 private:
  Adapter* adapter_;
};

struct LoopConfigDeleter {
  void operator()(fuse_loop_config* c) const { fuse_loop_cfg_destroy(c); }
};
using LoopConfigPtr = std::unique_ptr<fuse_loop_config, LoopConfigDeleter>;


// For its lifetime, libfuse's log reaches the session's transport.
class TransportScope {
 public:
  TransportScope(Transport* t, fuse_session* se) {
    t->set_session(se);
    g_transport.store(t);
  }
  ~TransportScope() { g_transport.store(nullptr); }
  TransportScope(const TransportScope&) = delete;
  TransportScope& operator=(const TransportScope&) = delete;
};

}  // namespace

Status ServeSession(const SessionOptions& o, Adapter* adapter, const ReadyCallback& report) {
  Transport& transport = adapter->transport();
  std::string refused;
  if (!transport.Decide(o.io_uring, ProbeUringSupport(), &refused)) {
    return Status::Invalid(refused);
  }
  FuseArgs args(o, transport.requested());
  spdlog::debug("fuse args: {}", args.ToString());
  SessionPtr se(fuse_session_new(args.get(), &Operations(), sizeof(fuse_lowlevel_ops), adapter));
  if (!se) {
    return Status::Invalid("cannot create the FUSE session: " + LastFuseError());
  }
  // Declared after the session, so destroyed before it.
  TransportScope transport_scope(&transport, se.get());
  // Over io_uring, requests that may block leave the ring threads.
  UringOffload offload(&adapter->bindings(), o.sync,
                       [adapter] { adapter->locks().Shutdown(); });
  if (transport.requested()) offload.Install(se.get());
  ShutdownSignals signals(se.get(), &adapter->locks());
  DBFS_RETURN_IF_ERROR(signals.status());
  // Ends (after the unmount below) before the session is destroyed.
  InvalidationScope invalidation(adapter, se.get());
  if (fuse_session_mount(se.get(), o.mountpoint.c_str()) != 0) {
    return Status::IOError(fmt::format("cannot mount on {}: {}", o.mountpoint, LastFuseError()));
  }
  spdlog::info("mounted {} on {}", o.source, o.mountpoint);
  report(Status::Ok());

  LoopConfigPtr cfg(fuse_loop_cfg_create());
  if (!cfg) {
    fuse_session_unmount(se.get());
    return Status::NoSpace("out of memory");
  }
  fuse_loop_cfg_set_clone_fd(cfg.get(), 0);
  fuse_loop_cfg_set_idle_threads(cfg.get(), 10);
  // Workers are made on demand (each holds a max_write buffer). Some requests
  // block for long: F_SETLKW waits, and commits waiting for the kernel to drop
  // directory entries (whose locks other requests hold while they wait for a
  // worker); enough workers keep those from starving everything else.
  fuse_loop_cfg_set_max_threads(cfg.get(), 64);
  int rc;
  {
    // Only this thread takes the shutdown signals: its sem_wait in the loop
    // is what a signal must interrupt.
    ScopedShutdownSignalMask unblock(SIG_UNBLOCK);
    rc = fuse_session_loop_mt(se.get(), cfg.get());
  }
  fuse_session_unmount(se.get());
  spdlog::info("unmounted {} ({} request(s) moved off the io_uring rings)", o.mountpoint,
               offload.offloaded());
  if (transport.failed()) return Status::IOError(transport.failure());
  if (rc < 0) return Status::FromErrno(-rc, "fuse session loop");
  return Status::Ok();
}

ScopedShutdownSignalMask::ScopedShutdownSignalMask(int how) {
  sigset_t set = ShutdownSignalSet();
  pthread_sigmask(how, &set, &old_);
}

ScopedShutdownSignalMask::~ScopedShutdownSignalMask() {
  pthread_sigmask(SIG_SETMASK, &old_, nullptr);
}

void RouteFuseLogging() { fuse_set_log_func(FuseLog); }

}  // namespace dbfs::fuse
