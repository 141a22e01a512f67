// EtcdClient: a small, synchronous etcd v3 client over gRPC, for the cluster
// store (docs/cluster.md). It speaks the KV, Watch, Lease, Cluster and
// Maintenance services through stubs generated from etcd's own protos
// (target dbfs_etcdpb); nothing outside this file sees a protobuf type.
//
// Endpoints: "host:port,host:port,..." (an "http://" prefix is accepted; TLS
// is not supported yet; host names are resolved once, at Connect).
//
// Routing: reads and watches go over one gRPC channel balanced round-robin
// over all members, so consecutive calls spread out and a dead member is
// skipped once its connection drops. Writes go straight to the leader over
// its own channel (found by asking the members, forgotten after a failed
// write or a newer raft term): a follower would forward them, and a write
// forwarded to a leader that just died stalls for etcd's request timeout
// (~5.5 s). Every call carries etcd's "hasleader" metadata: a member cut off
// from the quorum answers "no leader" at once instead of stalling.
//
// Deadlines: every call (retries included) ends within `timeout` of its start.
// When no member answers in time the call returns IOError (EIO at the FUSE
// boundary) whose message names the endpoints.
//
// Retries: reads (Range, a Txn of only ranges, MemberList, Status, lease
// keep-alives) are retried on another member until the deadline when a member
// fails. Writes (Put, DeleteRange, Txn, LeaseGrant, LeaseRevoke) are retried
// only when they provably were not applied: never sent (the leader
// unreachable) or refused before being proposed ("no leader"). Compact is
// retried like a read. A write that fails on a broken connection or at the
// deadline is IN DOUBT: it may or may not have been applied; its IOError
// message says "outcome unknown" and the caller must find out (e.g. by
// reading a key the write sets) before treating it as failed.
//
// Error codes: kIOError for unavailable members and deadlines; kCompacted for
// a read or watch below etcd's compaction point; kInvalid for a request over
// the server's limits (--max-txn-ops, --max-request-bytes) naming the limit;
// kNoSpace when etcd's backend quota is full; kNotFound for an unknown lease.
//
// Thread safety: every method of EtcdClient is thread-safe. Watch and
// LeaseKeeper handles own a thread each and may outlive the client.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvstore/status.h"

namespace dbfs::mvcc::cluster {

struct EtcdOptions {
  // "host:port[,host:port...]".
  std::string endpoints;
  // Upper bound on each call, retries included (the mount's cluster_timeout).
  std::chrono::milliseconds timeout{5000};
};

struct KeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t version = 0;  // 1 for a new key, +1 per put; a deleted key has none
  int64_t lease = 0;
};

// The range_end that makes [prefix, PrefixEnd(prefix)) cover every key
// starting with `prefix` ("\0" — every key — for an empty prefix).
std::string PrefixEnd(std::string_view prefix);

struct RangeOptions {
  // Empty: the single key. Otherwise [key, range_end); "\0" means every key
  // >= key.
  std::string range_end;
  // 0: the current revision. Otherwise a snapshot read at that revision
  // (kCompacted when it is below the compaction point).
  int64_t revision = 0;
  int64_t limit = 0;  // 0: no limit
  bool keys_only = false;
  bool count_only = false;
  // Served by the member's local copy without a quorum round trip; may be
  // stale — except at a given `revision`, whose history never changes: a
  // member that has not applied it yet is retried (bounded by the timeout).
  // Default: linearizable.
  bool serializable = false;
};

struct RangeResult {
  std::vector<KeyValue> kvs;  // key order
  int64_t count = 0;          // keys in the range (not only those returned)
  bool more = false;          // limit cut the result short
  int64_t revision = 0;       // the store's revision the read was served at
};

struct DeleteResult {
  int64_t deleted = 0;
  int64_t revision = 0;
};

// One condition of a Txn: `target(key) op operand`. For a key that does not
// exist, version, create_revision and mod_revision are 0.
struct Compare {
  enum class Target { kValue, kVersion, kCreateRevision, kModRevision };
  enum class Op { kEqual, kNotEqual, kLess, kGreater };

  static Compare Value(std::string key, Op op, std::string value);
  static Compare Version(std::string key, Op op, int64_t version);
  static Compare CreateRevision(std::string key, Op op, int64_t revision);
  static Compare ModRevision(std::string key, Op op, int64_t revision);

  std::string key;
  std::string range_end;  // non-empty: the condition must hold for every key in range
  Target target = Target::kModRevision;
  Op op = Op::kEqual;
  int64_t number = 0;  // version or revision operand
  std::string value;   // value operand
};

// One operation in a Txn branch.
struct TxnOp {
  enum class Type { kPut, kRange, kDelete };

  static TxnOp Put(std::string key, std::string value, int64_t lease = 0);
  static TxnOp Range(std::string key, RangeOptions options = {});
  static TxnOp Delete(std::string key, std::string range_end = "");

  Type type = Type::kPut;
  std::string key;
  std::string value;      // kPut
  int64_t lease = 0;      // kPut
  RangeOptions range;     // kRange (revision/serializable are ignored by etcd in a txn)
  std::string range_end;  // kDelete
};

struct TxnRequest {
  std::vector<Compare> compares;
  std::vector<TxnOp> success;  // applied when every compare holds
  std::vector<TxnOp> failure;  // applied otherwise
};

struct TxnOpResult {
  TxnOp::Type type = TxnOp::Type::kPut;
  RangeResult range;    // kRange
  int64_t deleted = 0;  // kDelete
};

struct TxnResult {
  bool succeeded = false;
  int64_t revision = 0;  // the store's revision after the txn (unchanged if it wrote nothing)
  std::vector<TxnOpResult> responses;  // one per op of the branch taken
};

struct LeaseGrant {
  int64_t id = 0;
  int64_t ttl_seconds = 0;  // as granted by the server
};

struct Member {
  uint64_t id = 0;
  std::string name;
  std::vector<std::string> peer_urls;
  std::vector<std::string> client_urls;
  bool is_learner = false;
};

struct MemberStatus {
  uint64_t member_id = 0;  // the member that answered
  uint64_t leader = 0;     // its view of the leader (0: none)
  std::string version;
  int64_t db_size = 0;
  uint64_t raft_index = 0;
  uint64_t raft_term = 0;
  int64_t revision = 0;
  std::vector<std::string> errors;  // active alarms etc.
};

// One delivery of a watch. Events of one kEvents batch come from one or more
// revisions, in revision order; batches are delivered in order, never
// overlapping, also across reconnects.
struct WatchBatch {
  enum class Kind {
    kEvents,        // `events` holds changes
    kProgress,      // nothing changed in the range up to `revision`
    kDisconnected,  // the stream broke; the watch reconnects and resumes by itself
    kCompacted,     // terminal: the resume revision was compacted (compact_revision)
    kCanceled,      // terminal: the server canceled the watch (status says why)
  };
  struct Event {
    bool is_delete = false;
    KeyValue kv;  // for a delete: key and mod_revision (the delete's revision)
  };

  Kind kind = Kind::kEvents;
  std::vector<Event> events;
  int64_t revision = 0;           // kProgress: every change <= this has been delivered
  int64_t compact_revision = 0;   // kCompacted: the oldest revision still available
  Status status;                  // kDisconnected, kCompacted, kCanceled: why
};

struct WatchOptions {
  std::string range_end;    // empty: the one key; PrefixEnd(key): a prefix
  int64_t start_revision = 0;  // 0: changes after the current revision
  bool progress_notify = false;  // ask for periodic kProgress batches when idle
};

using WatchCallback = std::function<void(const WatchBatch&)>;

class EtcdClient;

// A running watch. The callback runs on the watch's own thread, one batch at
// a time; it must not destroy its own Watch. Destroying (or Stop()) cancels
// the stream and joins the thread; no callback runs after Stop() returns.
class Watch {
 public:
  ~Watch();
  Watch(const Watch&) = delete;
  Watch& operator=(const Watch&) = delete;

  void Stop();
  // The first revision not yet delivered: start a new watch here to resume
  // without gaps or repeats. Thread-safe.
  int64_t next_revision() const;
  // True once a terminal batch (kCompacted, kCanceled) was delivered.
  bool finished() const;

  struct State;  // implementation, shared with the thread

 private:
  friend class EtcdClient;
  explicit Watch(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

// Keeps a lease alive in the background: renews it every TTL/3 until Stop()
// or destruction. If the lease expires or cannot be renewed before its TTL
// runs out (the cluster unreachable), `on_lost` is called once, on the
// keeper's thread, and renewal stops. Stopping does not revoke the lease;
// it may wait for a renewal in flight (at most the client's timeout).
class LeaseKeeper {
 public:
  ~LeaseKeeper();
  LeaseKeeper(const LeaseKeeper&) = delete;
  LeaseKeeper& operator=(const LeaseKeeper&) = delete;

  void Stop();
  // True once on_lost has been called and returned.
  bool lost() const;
  // Successful renewals so far.
  uint64_t renewals() const;

  struct State;

 private:
  friend class EtcdClient;
  explicit LeaseKeeper(std::shared_ptr<State> state);
  std::shared_ptr<State> state_;
};

class EtcdClient {
 public:
  // Parses and resolves the endpoints; does not contact the cluster (the
  // first call does). Invalid for a malformed endpoint list.
  static Result<std::unique_ptr<EtcdClient>> Connect(const EtcdOptions& options);

  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // The endpoints as given, e.g. for messages.
  const std::string& endpoints() const;
  std::chrono::milliseconds timeout() const;

  Result<RangeResult> Range(std::string_view key, const RangeOptions& options = {}) const;
  // Returns the revision of the put.
  Result<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0) const;
  Result<DeleteResult> DeleteRange(std::string_view key, std::string_view range_end = "") const;
  // Linearizable, also with no operations at all (etcd 3.4 itself would
  // answer a compare-only txn from a possibly lagging member; see the .cc).
  Result<TxnResult> Txn(const TxnRequest& request) const;
  // Discards every version older than `revision` (the newest version of each
  // key at `revision` stays). physical: return only once the backend freed it.
  Status Compact(int64_t revision, bool physical = false) const;

  Result<LeaseGrant> GrantLease(int64_t ttl_seconds) const;
  // Revokes the lease and deletes every key attached to it. NotFound if it
  // does not exist (expired, or already revoked).
  Status RevokeLease(int64_t id) const;
  // One renewal. Returns the remaining TTL; NotFound once the lease expired.
  Result<int64_t> KeepAliveOnce(int64_t id) const;
  // Starts the background renewal described at LeaseKeeper.
  std::unique_ptr<LeaseKeeper> KeepAlive(int64_t id, int64_t ttl_seconds,
                                         std::function<void(const Status&)> on_lost) const;

  // Starts a watch over `key` (or [key, options.range_end)) and returns once
  // the server confirmed it, so every change committed after that is
  // delivered. IOError when no member confirmed it within the timeout.
  Result<std::unique_ptr<Watch>> StartWatch(std::string_view key, const WatchOptions& options,
                                            WatchCallback callback) const;

  Result<std::vector<Member>> MemberList() const;
  // Status of the one member at `endpoint` ("host:port"), not balanced.
  Result<MemberStatus> StatusOf(std::string_view endpoint) const;

  struct Shared;  // channel, stubs and options, shared with watches and keepers

 private:
  explicit EtcdClient(std::shared_ptr<Shared> shared);
  std::shared_ptr<Shared> shared_;
};

}  // namespace dbfs::mvcc::cluster
