// RadosClient: a thin librados C++ wrapper holding one connection to a Ceph
// cluster and one pool, for the cluster store's data objects
// (docs/cluster.md). Errors come back as Status; librados types stay in the
// .cc.
//
// Timeouts: Connect sets rados_osd_op_timeout, rados_mon_op_timeout and
// client_mount_timeout from `timeout`, so a dead, partitioned or full
// cluster fails an operation with IOError (EIO) after about `timeout`
// instead of blocking forever (librados' default is to wait).
//
// Concurrency: every method is thread-safe (librados' IoCtx is). To issue
// many operations at once from one thread, use a RadosBatch: its operations
// are all in flight together and Wait() collects them.
#pragma once

#include <time.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::mvcc::cluster {

struct RadosOptions {
  std::string pool;
  // ceph.conf to read; empty: librados' default search ($CEPH_CONF,
  // /etc/ceph/ceph.conf, ...).
  std::string conf_path;
  // The client id: "admin" means client.admin ("client." is added if missing).
  std::string user = "admin";
  // Upper bound on each operation and on connecting (the cluster_timeout).
  std::chrono::milliseconds timeout{5000};
};

struct ObjectStat {
  uint64_t size = 0;
  struct timespec mtime = {};
};

// Raw space of the whole cluster (all pools, before replication).
struct ClusterSpace {
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t avail_bytes = 0;
};

class RadosBatch;

class RadosClient {
 public:
  // Connects to the cluster's monitors and opens the pool. IOError when no
  // monitor answers within the timeout; NotFound when the pool is missing.
  static Result<std::unique_ptr<RadosClient>> Connect(const RadosOptions& options);

  ~RadosClient();
  RadosClient(const RadosClient&) = delete;
  RadosClient& operator=(const RadosClient&) = delete;

  const std::string& pool() const;

  // Replaces the object's contents (creating it).
  Status WriteFull(const std::string& oid, std::string_view data) const;
  // Writes at `offset`, creating the object and zero-filling any hole.
  Status Write(const std::string& oid, std::string_view data, uint64_t offset) const;
  // Up to `length` bytes from `offset`: fewer at the end of the object, none
  // past it. NotFound when the object does not exist.
  Result<std::string> Read(const std::string& oid, uint64_t offset, size_t length) const;
  Status Remove(const std::string& oid) const;
  Result<ObjectStat> Stat(const std::string& oid) const;
  // Names of the pool's objects starting with `prefix`, sorted. The filter
  // runs in the client: the whole pool is listed (RADOS has no name index).
  Result<std::vector<std::string>> ListObjects(std::string_view prefix) const;
  // The cluster's raw space (statfs of a cluster volume).
  Result<ClusterSpace> SpaceOfCluster() const;

  struct Impl;

 private:
  friend class RadosBatch;
  explicit RadosClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Operations issued together (librados aio): each call starts one at once;
// Wait() blocks until all have finished and returns the first failure, in
// the order issued, naming its object. The destructor waits too, so buffers
// never outlive their operation. Not thread-safe: one batch per thread.
class RadosBatch {
 public:
  explicit RadosBatch(const RadosClient& client);
  ~RadosBatch();
  RadosBatch(const RadosBatch&) = delete;
  RadosBatch& operator=(const RadosBatch&) = delete;

  void WriteFull(const std::string& oid, std::string_view data);
  void Write(const std::string& oid, std::string_view data, uint64_t offset);
  // *out receives the bytes (short at the end of the object) once Wait()
  // returned ok; it must stay valid until then.
  void Read(const std::string& oid, uint64_t offset, size_t length, std::string* out);
  void Remove(const std::string& oid);

  Status Wait();
  size_t pending() const;

  struct Op;

 private:
  void Issue(std::unique_ptr<Op> op, int rc);

  const RadosClient& client_;
  std::vector<std::unique_ptr<Op>> ops_;
};

}  // namespace dbfs::mvcc::cluster
