#include "tools/lib/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/syslog_sink.h>
#include <syslog.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "elle/server.h"
#include "fs/runtime_dir.h"
#include "fs/filesystem.h"
#include "mvcc/volume.h"
#include "tools/lib/metrics_server.h"

namespace dbfs {

namespace {

// The mount's runtime directory (fs/runtime_dir.h).
std::string RuntimeDirOf(const MountOptions& o) {
  return o.runtime_dir.empty() ? DefaultRuntimeDir(o.volume) : o.runtime_dir;
}

Status SetUpLogging(const MountOptions& o) {
  spdlog::sink_ptr sink;
  try {
    struct stat st {};
    const bool cluster = mvcc::IsClusterVolume(o.volume);
    const bool is_volume = cluster || stat((o.volume + "/superblock").c_str(), &st) == 0;
    // Not a volume: Open fails next and the parent prints why; leave no
    // dbfs.log behind in a directory that is not ours.
    if (o.log == "syslog") {
      // The system log (the journal under systemd): ident dbfs-mount,
      // facility daemon, with the pid.
      sink = std::make_shared<spdlog::sinks::syslog_sink_mt>("dbfs-mount", LOG_PID, LOG_DAEMON,
                                                             /*enable_formatting=*/true);
    } else if (o.log.starts_with("file:")) {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.log.substr(5));
    } else if (o.foreground || o.log == "stderr") {
      sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    } else if (!is_volume) {
      sink = std::make_shared<spdlog::sinks::null_sink_mt>();
    } else if (o.fs.read_only || cluster) {
      // A read-only mount writes nothing to the volume, its log included; a
      // cluster volume has no directory to log into.
      const std::string dir = RuntimeDirOf(o);
      DBFS_RETURN_IF_ERROR(MakeRuntimeDir(dir));
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(dir + "/dbfs.log");
    } else {
      sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(o.volume + "/dbfs.log");
    }
  } catch (const spdlog::spdlog_ex& e) {
    return Status::IOError(fmt::format("cannot open the log ({}): {}",
                                       o.log.empty() ? o.volume + "/dbfs.log" : o.log, e.what()));
  }
  auto logger = std::make_shared<spdlog::logger>("dbfs", std::move(sink));
  logger->set_level(o.log_level);
  // Lifecycle messages reach the file at once; per-request tracing is buffered.
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
  fuse::RouteFuseLogging();
  return Status::Ok();
}

Status Serve(const MountOptions& o, const fuse::ReadyCallback& report) {
  // Before any thread exists: the engine's threads inherit the block.
  fuse::ScopedShutdownSignalMask block(SIG_BLOCK);
  if (o.io_uring == fuse::UringMode::kOn) {
    // Refused before the volume is opened (ServeSession checks again).
    const fuse::UringSupport uring = fuse::ProbeUringSupport();
    if (!uring.available) {
      return Status::Invalid("-o io_uring=on: io_uring is unavailable: " + uring.why_not);
    }
  }
  spdlog::info("opening {} (sync={}, noatime={}{})", o.volume, o.fs.sync, o.fs.noatime,
               o.fs.read_only ? ", read-only" : "");
  Result<std::unique_ptr<Filesystem>> opened = Filesystem::Open(o.volume, o.fs);
  if (!opened.ok()) return opened.TakeStatus();
  std::unique_ptr<Filesystem> fs = std::move(opened).value();
  fs->StartBackgroundCheckpoints();
  Status s;
  {
    // The Elle protocol server runs while the session does (elle/server.h).
    // Its socket and token go to the runtime directory, never into the
    // volume (whose filesystem may not hold sockets).
    const std::string run_dir = RuntimeDirOf(o);
    Status made = MakeRuntimeDir(run_dir);
    auto elle = made.ok() ? elle::Server::Start(fs.get(), {run_dir, o.elle_port, o.elle_weaken})
                          : Result<std::unique_ptr<elle::Server>>(made);
    if (!elle.ok()) {
      s = elle.TakeStatus();
    } else {
      fuse::Adapter adapter(fs.get(), o.cache);
      // -o metrics_port=: Prometheus text on loopback while the session runs.
      std::unique_ptr<MetricsServer> metrics;
      if (o.metrics_port != 0) {
        auto started = MetricsServer::Start(o.metrics_port,
                                            [&adapter] { return adapter.control().Prometheus(); });
        if (started.ok()) {
          metrics = std::move(started).value();
        } else {
          s = started.TakeStatus();
        }
      }
      fuse::SessionOptions so;
      so.source = o.volume;
      so.mountpoint = o.mountpoint;
      so.debug = o.debug;
      so.allow_other = o.allow_other;
      so.default_permissions = o.default_permissions;
      so.noatime = o.fs.noatime;
      // Device nodes and set-user-ID files work on a root mount unless told
      // otherwise (mount(8)'s defaults); other users get what fusermount3
      // allows them: nodev,nosuid.
      so.dev = o.dev.value_or(geteuid() == 0);
      so.suid = o.suid.value_or(geteuid() == 0);
      so.noexec = o.noexec;
      so.read_only = o.fs.read_only;
      so.sync = o.fs.sync;
      so.io_uring = o.io_uring;
      so.io_uring_q_depth = o.io_uring_q_depth;
      if (s.ok()) s = fuse::ServeSession(so, &adapter, report);
      if (metrics) metrics->Stop();
      (*elle)->Stop();
    }
  }
  // Last: the session and the Elle server no longer call into the engine.
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

Status RunMount(const MountOptions& o, const fuse::ReadyCallback& ready) {
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
          fmt::format("the mount daemon ended before the mount was live ({}); see {}",
                      DescribeWaitStatus(wstatus),
                      o.log == "syslog"           ? std::string("the system log")
                      : o.log.starts_with("file:") ? o.log.substr(5)
                                                   : o.volume + "/dbfs.log"));
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

}  // namespace dbfs
