#include "tests/cluster/cluster_fixture.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "tests/integration/mount_fixture.h"

#ifndef DBFS_CLUSTER_SCRIPTS_DIR
#error "DBFS_CLUSTER_SCRIPTS_DIR must name tests/cluster"
#endif

namespace dbfs::testing {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kStartTimeout{120000};
constexpr milliseconds kStepTimeout{60000};

bool KeepDirs() {
  const char* v = getenv("DBFS_TEST_KEEP");
  return v && std::string(v) == "1";
}

std::string Tail(const std::string& path, size_t lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  std::string out;
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i) {
    out += all[i] + "\n";
  }
  return out;
}

}  // namespace

// ---- ClusterReaper ----

ClusterReaper::ClusterReaper(const std::string& script, const std::string& dir) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2 for the cluster reaper failed";
    return;
  }
  // Everything the child needs is built before fork: after it, only
  // async-signal-safe calls (the parent has gRPC and librados threads).
  // Script and dir travel as positional parameters: no quoting needed.
  const char* cmd = KeepDirs() ? "bash \"$1\" stop \"$2\"" : "bash \"$1\" stop \"$2\"; rm -rf \"$2\"";
  const char* argv[] = {"/bin/bash", "-c", cmd, "cluster-reaper", script.c_str(), dir.c_str(), nullptr};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    ADD_FAILURE() << "fork for the cluster reaper failed";
    return;
  }
  if (pid == 0) {
    setsid();  // out of the test's process group: a ^C or timeout kill spares it
    for (int fd = 3; fd < 1024; ++fd) {
      if (fd != fds[0]) close(fd);
    }
    char b;
    ssize_t n;
    do {
      n = read(fds[0], &b, 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1) _exit(0);  // dismissed: the owner cleaned up
    // EOF: the test process ended without cleaning up.
    const int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
    }
    execv(argv[0], const_cast<char* const*>(argv));
    _exit(127);
  }
  close(fds[0]);
  pipe_fd_ = fds[1];
  pid_ = pid;
}

void ClusterReaper::Dismiss() {
  if (pipe_fd_ < 0) return;
  if (write(pipe_fd_, "x", 1) != 1) ADD_FAILURE() << "could not dismiss the cluster reaper";
  close(pipe_fd_);
  pipe_fd_ = -1;
  if (!WaitPid(pid_, milliseconds(10000), nullptr)) ADD_FAILURE() << "cluster reaper did not exit";
}

ClusterReaper::~ClusterReaper() {
  if (pipe_fd_ < 0) return;
  close(pipe_fd_);  // not dismissed: let it stop the cluster, and wait for it
  WaitPid(pid_, kStepTimeout, nullptr);
}

// ---- ScriptCluster ----

ScriptCluster::ScriptCluster(std::string script, std::string tag)
    : script_(std::string(DBFS_CLUSTER_SCRIPTS_DIR) + "/" + std::move(script)), tag_(std::move(tag)) {}

ScriptCluster::~ScriptCluster() {
  if (dir_.empty()) return;
  std::string out;
  const int rc = RunCommand({"bash", script_, "stop", dir_}, kStepTimeout, &out);
  if (rc != 0) ADD_FAILURE() << script_ << " stop " << dir_ << " failed (" << rc << "):\n" << out;
  if (!KeepDirs()) RemoveTree(dir_);
  if (reaper_) reaper_->Dismiss();
}

bool ScriptCluster::Start(const std::vector<std::string>& args, std::string* error) {
  std::string tmpl = "/tmp/dbfs-" + tag_ + "-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) {
    *error = "mkdtemp " + tmpl + ": " + strerror(errno);
    return false;
  }
  dir_ = tmpl;
  // Armed before anything runs, so a crash mid-start still stops the daemons.
  reaper_ = std::make_unique<ClusterReaper>(script_, dir_);
  std::vector<std::string> argv = {"bash", script_, "start", dir_};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  const int rc = RunCommand(argv, kStartTimeout, &out);
  if (rc != 0) {
    *error = script_ + " start " + dir_ + " failed (" + std::to_string(rc) + "):\n" + out;
    return false;
  }
  return true;
}

::testing::AssertionResult ScriptCluster::Run(const std::string& verb, const std::string& arg) {
  std::string out;
  const int rc = RunCommand({"bash", script_, verb, dir_, arg}, kStepTimeout, &out);
  if (rc == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << script_ << " " << verb << " " << dir_ << " " << arg
                                       << " failed (" << rc << "):\n"
                                       << out;
}

std::string ScriptCluster::Env(const std::string& name) const {
  std::ifstream in(dir_ + "/env");
  std::string line;
  const std::string want = name + "=";
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) == 0) return line.substr(want.size());
  }
  return "";
}

std::string ScriptCluster::Logs() const {
  std::string out;
  for (const std::string& d : {dir_, dir_ + "/log"}) {
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(d, ec)) {
      const std::string p = e.path().string();
      if (p.ends_with(".log") || p.ends_with(".out")) out += "==> " + p + " <==\n" + Tail(p, 15);
    }
  }
  return out;
}

// ---- EtcdCluster / CephCluster ----

EtcdCluster::EtcdCluster() : ScriptCluster("etcd_cluster.sh", "etcd") {}

std::unique_ptr<EtcdCluster> EtcdCluster::Start(int members, std::string* error,
                                                bool dbfs_limits) {
  std::unique_ptr<EtcdCluster> c(new EtcdCluster());
  c->members_ = members;
  std::vector<std::string> args = {std::to_string(members)};
  if (dbfs_limits) args.push_back("--dbfs-limits");
  if (!c->ScriptCluster::Start(args, error)) return nullptr;
  return c;
}

CephCluster::CephCluster() : ScriptCluster("ceph_cluster.sh", "ceph") {}

std::unique_ptr<CephCluster> CephCluster::Start(int osds, std::string* error) {
  std::unique_ptr<CephCluster> c(new CephCluster());
  c->osds_ = osds;
  if (!c->ScriptCluster::Start({std::to_string(osds)}, error)) return nullptr;
  return c;
}

std::string TestPrefix() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  if (!info) return "no-test/";
  return std::string(info->test_suite_name()) + "." + info->name() + "/";
}

}  // namespace dbfs::testing
