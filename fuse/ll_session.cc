#include "fuse/ll_session.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "elle/server.h"
#include "fuse/ll_fuse.h"
#include "fuse/ll_ops.h"

namespace dbfs::fuse {

namespace {

// ---------------------------------------------------------------- options

bool IsIgnoredOption(std::string_view key) {
  // Generic mount(8) options a mount helper receives; they mean nothing here.
  static constexpr std::string_view kIgnored[] = {
      "rw",   "dev",    "nodev", "suid",   "nosuid",  "exec",     "noexec",
      "auto", "noauto", "user",  "nouser", "_netdev", "defaults", "nofail"};
  for (std::string_view k : kIgnored) {
    if (key == k) return true;
  }
  return key.starts_with("x-");  // userspace-only fstab options
}

Status ParseSeconds(std::string_view key, std::string_view value, double* out) {
  std::string v(value);
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !std::isfinite(d) || d < 0) {
    return Status::Invalid(
        fmt::format("mount option '{}': '{}' is not a number of seconds >= 0", key, value));
  }
  *out = d;
  return Status::Ok();
}

// A non-negative integer, with an optional binary suffix k, m, g or t when
// `suffixes`.
Status ParseUint(std::string_view key, std::string_view value, bool suffixes, uint64_t* out) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [p, ec] = std::from_chars(value.data(), end, v);
  int shift = 0;
  if (ec == std::errc() && suffixes && p + 1 == end) {
    const std::string_view units = "kmgt";
    const size_t u = units.find(static_cast<char>(*p | 0x20));
    if (u != std::string_view::npos) {
      shift = 10 * static_cast<int>(u + 1);
      ++p;
    }
  }
  if (ec != std::errc() || p != end || (shift > 0 && v > (UINT64_MAX >> shift))) {
    return Status::Invalid(fmt::format("mount option '{}': '{}' is not a valid {}", key, value,
                                       suffixes ? "size (e.g. 512m, 4g)" : "whole number"));
  }
  *out = v << shift;
  return Status::Ok();
}

// ---------------------------------------------------------------- checks

Status CheckDirectory(std::string_view what, std::string* path) {
  if (path->empty()) return Status::Invalid(fmt::format("no {} given", what));
  auto fail = [&](int err) {
    Status s = Status::FromErrno(err, fmt::format("{} {}", what, *path));
    if (err != ENOTCONN) return s;
    return Status(s.code(), s.message() + " (a dead DBFS mount? run fusermount3 -u " + *path + ")",
                  err);
  };
  char* real = realpath(path->c_str(), nullptr);
  if (real == nullptr) return fail(errno);
  std::string abs(real);
  free(real);
  struct stat st {};
  if (stat(abs.c_str(), &st) != 0) return fail(errno);
  if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDir, fmt::format("{} {}: not a directory", what, *path));
  }
  *path = abs;
  return Status::Ok();
}

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountInfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '7' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

// ---------------------------------------------------------------- logging

std::mutex g_fuse_error_mu;
std::string g_fuse_error;  // last error libfuse logged, for error messages

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
}

Status SetUpLogging(const MountOptions& o) {
  spdlog::sink_ptr sink;
  try {
    struct stat st {};
    const bool is_volume = stat((o.volume + "/superblock").c_str(), &st) == 0;
    // Not a volume: Open fails next and the parent prints why; leave no
    // dbfs.log behind in a directory that is not ours.
    if (o.foreground) {
      sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    } else if (!is_volume) {
      sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.volume + "/dbfs.log");
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError(fmt::format("cannot open the log {}/dbfs.log: {}", o.volume, e.what()));
  }
  auto logger = std::make_shared<spdlog::logger>("dbfs", std::move(sink));
  logger->set_level(o.log_level);
  // Lifecycle messages reach the file at once; per-request tracing is buffered.
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  fuse_set_log_func(FuseLog);
  return Status::Ok();
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

// Blocks (or unblocks) the shutdown signals in the calling thread for its
// lifetime. Threads started meanwhile (the engine's, libfuse's) inherit the
// block.
class ScopedSignalMask {
 public:
  explicit ScopedSignalMask(int how) {
    sigset_t set = ShutdownSignalSet();
    pthread_sigmask(how, &set, &old_);
  }
  ~ScopedSignalMask() { pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  ScopedSignalMask(const ScopedSignalMask&) = delete;
  ScopedSignalMask& operator=(const ScopedSignalMask&) = delete;

 private:
  sigset_t old_;
};

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
  explicit FuseArgs(const MountOptions& o) {
    std::string opts = "fsname=dbfs:" + EscapeOptionValue(o.volume) + ",subtype=dbfs";
    if (o.default_permissions) opts += ",default_permissions";
    if (o.allow_other) opts += ",allow_other";
    if (o.fs.noatime) opts += ",noatime";
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

// Creates the session, mounts, reports ready, serves until unmount/signal,
// unmounts. REQUIRES: the shutdown signals are blocked in this thread.
Status ServeSession(const MountOptions& o, Adapter* adapter, const ReadyCallback& report) {
  FuseArgs args(o);
  spdlog::debug("fuse args: {}", args.ToString());
  SessionPtr se(fuse_session_new(args.get(), &Operations(), sizeof(fuse_lowlevel_ops), adapter));
  if (!se) {
    return Status::Invalid("cannot create the FUSE session: " + LastFuseError());
  }
  // Declared after the session, so destroyed before it.
  ShutdownSignals signals(se.get(), &adapter->locks());
  DBFS_RETURN_IF_ERROR(signals.status());
  // Ends (after the unmount below) before the session is destroyed.
  InvalidationScope invalidation(adapter, se.get());
  if (fuse_session_mount(se.get(), o.mountpoint.c_str()) != 0) {
    return Status::IOError(fmt::format("cannot mount on {}: {}", o.mountpoint, LastFuseError()));
  }
  // Before the loop reads the kernel's INIT request.
  adapter->channel().Install(se.get(), /*want_direct_io_mmap=*/true);
  spdlog::info("mounted {} on {}", o.volume, o.mountpoint);
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
    ScopedSignalMask unblock(SIG_UNBLOCK);
    rc = fuse_session_loop_mt(se.get(), cfg.get());
  }
  fuse_session_unmount(se.get());
  spdlog::info("unmounted {}", o.mountpoint);
  if (rc < 0) return Status::FromErrno(-rc, "fuse session loop");
  return Status::Ok();
}

Status Serve(const MountOptions& o, const ReadyCallback& report) {
  // Before any thread exists: the engine's threads inherit the block.
  ScopedSignalMask block(SIG_BLOCK);
  spdlog::info("opening {} (sync={}, noatime={})", o.volume, o.fs.sync, o.fs.noatime);
  Result<std::unique_ptr<Filesystem>> opened = Filesystem::Open(o.volume, o.fs);
  if (!opened.ok()) return opened.TakeStatus();
  std::unique_ptr<Filesystem> fs = std::move(opened).value();
  Status s;
  {
    // The Elle protocol server runs while the session does (elle/server.h).
    auto elle = elle::Server::Start(fs.get(), {o.volume, o.elle_port, o.elle_weaken});
    if (!elle.ok()) {
      s = elle.TakeStatus();
    } else {
      Adapter adapter(fs.get(), o.cache);
      s = ServeSession(o, &adapter, report);
      (*elle)->Stop();
    }
  }
  Status closed = fs->Close();
  if (closed.ok()) {
    spdlog::info("closed {} cleanly", o.volume);
  } else {
    spdlog::error("closing {} failed: {}", o.volume, closed.ToString());
    if (s.ok()) s = std::move(closed);
  }
  return s;
}

// ---------------------------------------------------------------- daemon

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // the parent is gone: nobody to tell
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[512];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

void DetachStdio() {
  const int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) return;
  dup2(null, STDIN_FILENO);
  dup2(null, STDOUT_FILENO);
  dup2(null, STDERR_FILENO);
  if (null > STDERR_FILENO) close(null);
}

std::string DescribeWaitStatus(int wstatus) {
  if (WIFEXITED(wstatus)) return fmt::format("exit status {}", WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) return fmt::format("killed by signal {}", WTERMSIG(wstatus));
  return "unknown status";
}

}  // namespace

Status ParseMountOptions(std::string_view list, MountOptions* out) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view();
    if (IsIgnoredOption(key)) continue;
    auto flag = [&](bool* target, bool v) {
      if (has_value) {
        return Status::Invalid(fmt::format("mount option '{}' takes no value", key));
      }
      *target = v;
      return Status::Ok();
    };
    if (key == "sync") {
      DBFS_RETURN_IF_ERROR(flag(&out->fs.sync, true));
    } else if (key == "noatime") {
      DBFS_RETURN_IF_ERROR(flag(&out->fs.noatime, true));
    } else if (key == "allow_other") {
      DBFS_RETURN_IF_ERROR(flag(&out->allow_other, true));
    } else if (key == "default_permissions") {
      DBFS_RETURN_IF_ERROR(flag(&out->default_permissions, true));
    } else if (key == "no_default_permissions") {
      DBFS_RETURN_IF_ERROR(flag(&out->default_permissions, false));
    } else if (key == "log_level") {
      static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
          {"trace", spdlog::level::trace},
          {"debug", spdlog::level::debug},
          {"info", spdlog::level::info},
          {"warn", spdlog::level::warn},
          {"error", spdlog::level::err}};
      bool found = false;
      for (const auto& [name, level] : kLevels) {
        if (value == name) {
          out->log_level = level;
          out->fs.log_level = std::string(name);
          found = true;
        }
      }
      if (!found) {
        return Status::Invalid(fmt::format(
            "mount option log_level: '{}' is not one of trace, debug, info, warn, error", value));
      }
    } else if (key == "entry_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseSeconds(key, value, &out->cache.entry_timeout));
    } else if (key == "attr_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseSeconds(key, value, &out->cache.attr_timeout));
    } else if (key == "direct_io" && !has_value) {
      out->cache.direct_io = true;
    } else if (key == "tx_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &out->fs.tx_timeout_s));
    } else if (key == "tx_max_bytes" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/true, &out->fs.tx_max_bytes));
    } else if (key == "checkpoint_mb" && has_value) {
      uint64_t mb = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &mb));
      out->fs.checkpoint_bytes = mb << 20;
    } else if (key == "wal_segment_mb" && has_value) {
      uint64_t mb = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &mb));
      if (mb == 0 || mb > 1024) {
        return Status::Invalid("mount option wal_segment_mb: between 1 and 1024");
      }
      out->fs.wal_segment_bytes = mb << 20;
    } else if (key == "checkpoint_interval" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &out->fs.checkpoint_interval_s));
    } else if (key == "elle_port" && has_value) {
      uint64_t port = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &port));
      if (port == 0 || port > 65535) {
        return Status::Invalid(fmt::format("mount option elle_port: '{}' is not a port", value));
      }
      out->elle_port = static_cast<int>(port);
    } else if (key == "elle_weaken") {
      // Test-only negative control: "elle_weaken" or "elle_weaken=1".
      if (has_value && value != "1" && value != "0") {
        return Status::Invalid("mount option elle_weaken takes 0 or 1");
      }
      out->elle_weaken = !has_value || value == "1";
    } else {
      return Status::Invalid(
          fmt::format("unknown mount option '{}' (known: sync, noatime, log_level=, allow_other, "
                      "default_permissions, no_default_permissions, entry_timeout=, attr_timeout=, direct_io, "
                      "tx_timeout=, tx_max_bytes=, checkpoint_mb=, checkpoint_interval=, wal_segment_mb=, elle_port=)",
                      item));
    }
  }
  return Status::Ok();
}

Status CheckMountTarget(MountOptions* o) {
  DBFS_RETURN_IF_ERROR(CheckDirectory("volume", &o->volume));
  DBFS_RETURN_IF_ERROR(CheckDirectory("mountpoint", &o->mountpoint));
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::IOError("cannot read /proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    if (!(fields >> id >> parent >> dev >> root >> mountpoint)) continue;
    if (UnescapeMountInfo(mountpoint) != o->mountpoint) continue;
    std::string fstype, source;
    const size_t sep = line.find(" - ");
    if (sep != std::string::npos) {
      std::istringstream tail(line.substr(sep + 3));
      tail >> fstype >> source;
    }
    return Status::Busy(fmt::format("mountpoint {} is already a mount point ({} {})", o->mountpoint,
                                    UnescapeMountInfo(source), fstype));
  }
  if (o->volume == o->mountpoint) {
    return Status::Invalid("the volume and the mountpoint are the same directory");
  }
  return Status::Ok();
}

Status RunMount(const MountOptions& o, const ReadyCallback& ready) {
  bool reported = false;
  auto report = [&](const Status& s) {
    if (reported) return;
    reported = true;
    if (ready) ready(s);
  };
  Status s = SetUpLogging(o);
  if (s.ok()) s = Serve(o, report);
  // In the foreground the caller prints the error; in the background the log
  // file is where it is kept.
  if (!s.ok() && !o.foreground) spdlog::error("{}", s.ToString());
  report(s);
  spdlog::default_logger()->flush();
  return s;
}

Status RunMountInBackground(const MountOptions& o) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno(errno, "pipe");
  std::fflush(stdout);
  std::fflush(stderr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    return Status::FromErrno(err, "fork");
  }
  if (pid > 0) {
    // Parent: wait for the daemon's verdict ("0", or "1" + message).
    close(fds[1]);
    const std::string verdict = ReadAll(fds[0]);
    close(fds[0]);
    if (!verdict.empty() && verdict[0] == '0') return Status::Ok();
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (verdict.empty()) {
      return Status::IOError(
          fmt::format("the mount daemon ended before the mount was live ({}); "
                      "see {}/dbfs.log",
                      DescribeWaitStatus(wstatus), o.volume));
    }
    return Status(Code::kInvalid, verdict.substr(1));
  }

  // Daemon.
  close(fds[0]);
  setsid();
  // Keep no directory busy; every path in `o` is absolute.
  [[maybe_unused]] int rc = chdir("/");
  signal(SIGPIPE, SIG_IGN);  // a vanished parent must not kill us
  int ready_fd = fds[1];
  MountOptions daemon_options = o;
  daemon_options.foreground = false;
  daemon_options.debug = false;  // request tracing needs a terminal: use -f -d
  Status s = RunMount(daemon_options, [&ready_fd](const Status& st) {
    // Let go of the caller's terminal or pipes before the caller goes on.
    if (st.ok()) DetachStdio();
    WriteAll(ready_fd, st.ok() ? std::string("0") : "1" + st.ToString());
    close(ready_fd);
    ready_fd = -1;
  });
  spdlog::shutdown();
  std::exit(s.ok() ? 0 : 1);
}

}  // namespace dbfs::fuse
