// Real etcd and Ceph clusters on 127.0.0.1 for tests and benchmarks, brought
// up by tests/cluster/etcd_cluster.sh and ceph_cluster.sh in a fresh temp dir
// (/tmp/dbfs-etcd-XXXXXX, /tmp/dbfs-ceph-XXXXXX).
//
// Teardown on every path: the destructor stops every daemon (by pid, through
// the script) and removes the dir. Should the test process die before that
// (a crash, an abort, a SIGKILL from a ctest timeout), a small reaper process
// forked at start notices its parent's end and runs the same stop.
//
// Environment: DBFS_TEST_KEEP=1 keeps the temp dir (daemons are stopped
// anyway).
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <string>

namespace dbfs::testing {

// Runs `<script> stop DIR` and removes DIR if this process ends without
// doing so itself. Dismiss() once the owner has cleaned up.
class ClusterReaper {
 public:
  ClusterReaper(const std::string& script, const std::string& dir);
  ~ClusterReaper();
  ClusterReaper(const ClusterReaper&) = delete;
  ClusterReaper& operator=(const ClusterReaper&) = delete;
  void Dismiss();

 private:
  int pipe_fd_ = -1;  // our end; the reaper acts when it closes without a byte
  pid_t pid_ = -1;
};

// What the two cluster kinds share: a temp dir, a script, an env file.
class ScriptCluster {
 public:
  ~ScriptCluster();
  ScriptCluster(const ScriptCluster&) = delete;
  ScriptCluster& operator=(const ScriptCluster&) = delete;

  const std::string& dir() const { return dir_; }
  // A value from DIR/env ("" if missing).
  std::string Env(const std::string& name) const;
  // The last lines of the daemons' logs, for failure messages.
  std::string Logs() const;

 protected:
  ScriptCluster(std::string script, std::string tag);
  // mkdtemp + `script start DIR args...`; false with *error on failure.
  bool Start(const std::vector<std::string>& args, std::string* error);
  // `script verb DIR arg`, bounded.
  ::testing::AssertionResult Run(const std::string& verb, const std::string& arg);

 private:
  std::string script_, tag_, dir_;
  std::unique_ptr<ClusterReaper> reaper_;
};

class EtcdCluster : public ScriptCluster {
 public:
  // `members` etcd members, all healthy; null with *error on failure.
  // `dbfs_limits`: started with the server limits a DBFS cluster volume
  // needs (etcd_cluster.sh --dbfs-limits).
  static std::unique_ptr<EtcdCluster> Start(int members, std::string* error,
                                            bool dbfs_limits = false);

  // "127.0.0.1:P1,127.0.0.1:P2,..."
  std::string endpoints() const { return Env("ETCD_ENDPOINTS"); }
  // Member i's endpoint, 1-based.
  std::string endpoint(int i) const { return Env("ETCD_ENDPOINT_" + std::to_string(i)); }
  int members() const { return members_; }

  // SIGKILL member i; restart it on its data (returns once it accepts
  // clients).
  ::testing::AssertionResult KillMember(int i) { return Run("kill-member", std::to_string(i)); }
  ::testing::AssertionResult StartMember(int i) { return Run("start-member", std::to_string(i)); }

 private:
  EtcdCluster();
  int members_ = 0;
};

class CephCluster : public ScriptCluster {
 public:
  // One monitor and `osds` memstore OSDs with a pool ready for writes.
  static std::unique_ptr<CephCluster> Start(int osds, std::string* error);
  static std::unique_ptr<CephCluster> Start(int osds, std::string* error, bool /*unused*/) {
    return Start(osds, error);
  }

  std::string conf_path() const { return Env("CEPH_CONF"); }
  std::string pool() const { return Env("CEPH_POOL"); }
  int osds() const { return osds_; }

  // SIGKILL OSD i (0-based); restart it (returns once the monitor has it up).
  ::testing::AssertionResult KillOsd(int i) { return Run("kill-osd", std::to_string(i)); }
  ::testing::AssertionResult StartOsd(int i) { return Run("start-osd", std::to_string(i)); }

 private:
  CephCluster();
  int osds_ = 0;
};

// One cluster shared by every test of a binary (tests keep to their own key
// prefixes / object names). Register with
//   ::testing::AddGlobalTestEnvironment(new SharedEtcd(3));
// and reach it with SharedEtcd::cluster() (null if it failed to start; the
// failure is recorded).
template <typename ClusterT>
class SharedCluster : public ::testing::Environment {
 public:
  // `dbfs_limits`: an etcd cluster with the limits DBFS volumes need.
  explicit SharedCluster(int size, bool dbfs_limits = false)
      : size_(size), dbfs_limits_(dbfs_limits) {}
  void SetUp() override {
    std::string error;
    instance() = ClusterT::Start(size_, &error, dbfs_limits_);
    if (!instance()) ADD_FAILURE() << "shared cluster: " << error;
  }
  void TearDown() override { instance().reset(); }
  static ClusterT* cluster() { return instance().get(); }

 private:
  static std::unique_ptr<ClusterT>& instance() {
    static std::unique_ptr<ClusterT> c;
    return c;
  }
  int size_;
  bool dbfs_limits_;
};
using SharedEtcd = SharedCluster<EtcdCluster>;
using SharedCeph = SharedCluster<CephCluster>;

// A name unique to the running test ("Suite.Test/"), for key prefixes and
// object names in a shared cluster.
std::string TestPrefix();

}  // namespace dbfs::testing
