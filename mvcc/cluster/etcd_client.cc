#include "mvcc/cluster/etcd_client.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "etcd/etcdserver/etcdserverpb/rpc.grpc.pb.h"

namespace dbfs::mvcc::cluster {

namespace pb = ::etcdserverpb;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

struct EtcdClient::Shared {
  // One member's own connection, for writes sent straight to the leader and
  // for leader discovery.
  struct MemberConn {
    std::string target;  // "ip:port" / "[ip6]:port"
    std::shared_ptr<grpc::Channel> channel;
    std::unique_ptr<pb::KV::Stub> kv;
    std::unique_ptr<pb::Lease::Stub> lease;
    std::unique_ptr<pb::Maintenance::Stub> maintenance;
    std::atomic<uint64_t> id{0};  // etcd member id, once learnt
  };

  std::string endpoints_text;         // as given, for messages
  std::vector<std::string> targets;   // one resolved "ip:port" / "[ip6]:port" per endpoint
  int family = 0;                     // AF_INET or AF_INET6, for every target
  milliseconds timeout{5000};
  grpc::ChannelArguments args;
  std::shared_ptr<grpc::Channel> channel;  // every member, round-robin
  std::unique_ptr<pb::KV::Stub> kv;
  std::unique_ptr<pb::Watch::Stub> watch;
  std::unique_ptr<pb::Lease::Stub> lease;
  std::unique_ptr<pb::Cluster::Stub> cluster;
  std::vector<std::unique_ptr<MemberConn>> members;  // same order as targets
  // Index in `members` of the leader as last seen, or -1; and the raft term
  // it was seen in. A response from a later term clears it.
  mutable std::atomic<int> leader{-1};
  mutable std::atomic<uint64_t> leader_term{0};

  void NoteTerm(uint64_t term) const {
    if (term > leader_term.load()) leader.store(-1);
  }

  std::string Prefix(std::string_view what) const {
    return fmt::format("etcd {}: {}", endpoints_text, what);
  }
  double TimeoutSeconds() const { return static_cast<double>(timeout.count()) / 1000.0; }
};

namespace {

// How a call is routed and what a failure of it may be retried on.
//   kRead: any member (round-robin); retried on another after any failure.
//   kWrite: the leader; retried only when the request provably was not
//     applied (never sent, or etcd says it never proposed it).
//   kIdempotentWrite: the leader; retried like a read (applying it twice is
//     harmless: Compact).
enum class Kind { kRead, kWrite, kIdempotentWrite };

// The request's shape, for messages about the server's limits.
struct RequestInfo {
  int64_t revision = 0;
  bool serializable = false;  // a read a lagging member may not serve yet
  size_t bytes = 0;
  size_t compares = 0, success = 0, failure = 0;
};

bool Contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// etcd's UNAVAILABLE errors raised before a request is proposed to raft
// (etcdserver/api/v3rpc/rpctypes/error.go): retrying them cannot apply a
// write twice.
bool NotProposed(const grpc::Status& st) {
  const std::string& m = st.error_message();
  return m == "etcdserver: no leader" || m == "etcdserver: not capable" ||
         m == "etcdserver: rpc not supported for learner";
}

// gRPC's UNAVAILABLE for an RPC that found no connection to send it on
// (wait_for_ready off and the member down): the load balancer's pick
// failure, worded "connections to all backends failing" since gRPC 1.50 and
// "failed to connect to all addresses" before. Anything else that breaks a
// sent request leaves its outcome unknown.
constexpr std::string_view kNoLeaderFound = "no member reachable, or no leader elected";

bool NotSent(const grpc::Status& st) {
  const std::string& m = st.error_message();
  return m.rfind("connections to all backends failing", 0) == 0 ||
         m.rfind("failed to connect to all addresses", 0) == 0 || m == kNoLeaderFound;
}

// A serializable read at a revision the member has not applied yet: another
// member, or the same a moment later, has it. (For a linearizable read the
// revision really does not exist yet: no retry.)
bool NotAppliedYet(const grpc::Status& st, const RequestInfo& info) {
  return info.serializable && st.error_code() == grpc::StatusCode::OUT_OF_RANGE &&
         Contains(st.error_message(), "future revision");
}

bool Retryable(const grpc::Status& st, Kind kind, const RequestInfo& info) {
  if (NotAppliedYet(st, info)) return true;
  if (st.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  return kind != Kind::kWrite || NotProposed(st) || NotSent(st);
}

// The one place a gRPC/etcd error becomes a Status.
Status MapError(const EtcdClient::Shared& sh, std::string_view what, const grpc::Status& st,
                Kind kind, const RequestInfo& info) {
  const std::string prefix = sh.Prefix(what);
  const std::string& m = st.error_message();
  const char* doubt = (kind == Kind::kWrite) ? " (outcome unknown: it may have been applied)" : "";
  switch (st.error_code()) {
    case grpc::StatusCode::OK:
      return Status::Ok();
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return Status::IOError(fmt::format("{}: no member answered within {:.2f} s{}", prefix,
                                         sh.TimeoutSeconds(), doubt));
    case grpc::StatusCode::UNAVAILABLE:
      return Status::IOError(fmt::format("{}: unavailable: {}{}", prefix, m,
                                         NotProposed(st) || NotSent(st) ? "" : doubt));
    case grpc::StatusCode::OUT_OF_RANGE:
      if (Contains(m, "compacted")) {
        return Status::Compacted(
            fmt::format("{}: revision {} has been compacted ({})", prefix, info.revision, m));
      }
      if (Contains(m, "future revision")) {
        return Status::Invalid(fmt::format("{}: revision {} is in the future", prefix, info.revision));
      }
      return Status::Invalid(fmt::format("{}: {}", prefix, m));
    case grpc::StatusCode::INVALID_ARGUMENT:
      if (Contains(m, "too many operations")) {
        return Status::Invalid(fmt::format(
            "{}: txn of {} compares, {} success and {} failure operations exceeds the server's "
            "limit on operations per txn (--max-txn-ops, 128 by default)",
            prefix, info.compares, info.success, info.failure));
      }
      if (Contains(m, "request is too large")) {
        return Status::Invalid(fmt::format(
            "{}: request of {} bytes exceeds the server's limit (--max-request-bytes, 1.5 MiB by "
            "default)",
            prefix, info.bytes));
      }
      if (Contains(m, "duplicate key")) {
        return Status::Invalid(fmt::format("{}: a txn branch writes the same key twice", prefix));
      }
      return Status::Invalid(fmt::format("{}: {}", prefix, m));
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      if (Contains(m, "database space exceeded")) {
        return Status::NoSpace(fmt::format(
            "{}: etcd's backend quota (--quota-backend-bytes) is full; compact and defragment",
            prefix));
      }
      if (Contains(m, "larger than max")) {
        return Status::Invalid(fmt::format(
            "{}: request of {} bytes exceeds the server's message limit (--max-request-bytes + "
            "512 KiB): {}",
            prefix, info.bytes, m));
      }
      return Status::IOError(fmt::format("{}: {}", prefix, m));
    case grpc::StatusCode::NOT_FOUND:
      return Status::NotFound(fmt::format("{}: {}", prefix, m));
    case grpc::StatusCode::PERMISSION_DENIED:
    case grpc::StatusCode::UNAUTHENTICATED:
      return Status(Code::kAccess, fmt::format("{}: {}", prefix, m));
    case grpc::StatusCode::DATA_LOSS:
      return Status::Corruption(fmt::format("{}: {}", prefix, m));
    default:
      return Status::IOError(fmt::format("{}: gRPC status {}: {}{}", prefix,
                                         static_cast<int>(st.error_code()), m, doubt));
  }
}

// gRPC takes deadlines on the system clock only; ours are steady.
std::chrono::system_clock::time_point SystemDeadline(Clock::time_point deadline) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(deadline - Clock::now());
}

// wait_for_ready: queue until a connection is up (bounded by the deadline)
// instead of failing at once while connections are re-established. Off for
// a call aimed at one member: if it is down, we want to know at once.
void PrepareContext(grpc::ClientContext* ctx, Clock::time_point deadline, bool wait_for_ready) {
  ctx->set_deadline(SystemDeadline(deadline));
  ctx->set_wait_for_ready(wait_for_ready);
  // rpctypes.MetadataRequireLeaderKey: a member without a leader refuses at
  // once ("no leader"), so the retry goes to a member of the quorum.
  ctx->AddMetadata("hasleader", "true");
}

// The stubs one attempt uses: the balanced channel's or one member's.
struct Route {
  pb::KV::Stub* kv;
  pb::Lease::Stub* lease;
};

constexpr int kNoLeader = -1;        // none elected (or no member answered)
constexpr int kLeaderElsewhere = -2;  // elected, but not among our endpoints

// Asks every member who leads; remembers the answer in sh.leader.
int FindLeader(const EtcdClient::Shared& sh, Clock::time_point deadline) {
  uint64_t leader_id = 0, term = 0;
  for (const auto& m : sh.members) {
    grpc::ClientContext ctx;
    PrepareContext(&ctx, std::min(deadline, Clock::now() + milliseconds(250)), false);
    pb::StatusRequest req;
    pb::StatusResponse resp;
    if (!m->maintenance->Status(&ctx, req, &resp).ok()) continue;
    m->id.store(resp.header().member_id());
    if (resp.leader() != 0 && resp.raftterm() >= term) {
      leader_id = resp.leader();
      term = resp.raftterm();
    }
  }
  if (leader_id == 0) return kNoLeader;
  for (size_t i = 0; i < sh.members.size(); ++i) {
    if (sh.members[i]->id.load() == leader_id) {
      sh.leader_term.store(term);
      sh.leader.store(static_cast<int>(i));
      return static_cast<int>(i);
    }
  }
  return kLeaderElsewhere;
}

// Runs `attempt(ctx, route)` until it succeeds, fails for good, or the
// deadline passes.
//
// Reads go round-robin over all members, and each attempt gets a share of
// the deadline: a follower whose leader just died forwards the request to it
// and waits for etcd's own request timeout (5 s + 2 election timeouts), so a
// read stuck there is cut short and retried on another member.
//
// Writes go straight to the leader: a follower would forward them, one hop
// more, and a write forwarded to a leader that just died is dropped by raft
// and stalls the same 5 s with its outcome unknown. Sent to a dead leader,
// it fails at once unsent, and we look for the new one (~0.3 s with the
// test cluster's election timeout). A write cannot be cut short: it may
// still commit, so it has the whole deadline.
template <typename Attempt>
Status Call(const EtcdClient::Shared& sh, std::string_view what, Kind kind, const RequestInfo& info,
            Attempt&& attempt, Clock::time_point deadline) {
  const milliseconds read_attempt = std::max(sh.timeout / 4, milliseconds(250));
  milliseconds backoff{10};
  for (;;) {
    grpc::ClientContext ctx;
    Route route{sh.kv.get(), sh.lease.get()};
    Clock::time_point attempt_deadline = deadline;
    int leader = kNoLeader;
    grpc::Status st;
    if (kind == Kind::kRead) {
      attempt_deadline = std::min(deadline, Clock::now() + read_attempt);
      PrepareContext(&ctx, attempt_deadline, true);
      st = attempt(&ctx, route);
    } else {
      leader = sh.leader.load();
      if (leader < 0) leader = FindLeader(sh, deadline);
      if (leader >= 0) {
        route = Route{sh.members[leader]->kv.get(), sh.members[leader]->lease.get()};
        PrepareContext(&ctx, deadline, false);
        st = attempt(&ctx, route);
        if (!st.ok()) {
          int expected = leader;  // whatever went wrong, ask again next time
          sh.leader.compare_exchange_strong(expected, kNoLeader);
        }
      } else if (leader == kLeaderElsewhere) {
        PrepareContext(&ctx, deadline, true);  // a member we know forwards it
        st = attempt(&ctx, route);
      } else {
        st = grpc::Status(grpc::StatusCode::UNAVAILABLE, std::string(kNoLeaderFound));
      }
    }
    if (st.ok()) return Status::Ok();
    const auto now = Clock::now();
    const bool attempt_expired =
        kind == Kind::kRead && st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED &&
        attempt_deadline < deadline;
    if (!(attempt_expired || Retryable(st, kind, info)) || now + backoff >= deadline) {
      return MapError(sh, what, st, kind, info);
    }
    spdlog::debug("{}: retrying after: {}", sh.Prefix(what), st.error_message());
    if (attempt_expired) continue;  // it already waited; go straight to the next member
    if (NotAppliedYet(st, info)) {
      // Followers apply within about a millisecond of the leader.
      std::this_thread::sleep_for(milliseconds(1));
      continue;
    }
    // Backoff between attempts of a production call, not a test wait: a
    // cluster without a leader needs an election timeout to get one.
    std::this_thread::sleep_for(backoff);
    backoff = std::min(backoff * 2, milliseconds(200));
  }
}

template <typename Attempt>
Status Call(const EtcdClient::Shared& sh, std::string_view what, Kind kind, const RequestInfo& info,
            Attempt&& attempt) {
  return Call(sh, what, kind, info, std::forward<Attempt>(attempt), Clock::now() + sh.timeout);
}

KeyValue FromPb(const mvccpb::KeyValue& kv) {
  KeyValue out;
  out.key = kv.key();
  out.value = kv.value();
  out.create_revision = kv.create_revision();
  out.mod_revision = kv.mod_revision();
  out.version = kv.version();
  out.lease = kv.lease();
  return out;
}

RangeResult FromPb(const pb::RangeResponse& r) {
  RangeResult out;
  out.kvs.reserve(r.kvs_size());
  for (const auto& kv : r.kvs()) out.kvs.push_back(FromPb(kv));
  out.count = r.count();
  out.more = r.more();
  out.revision = r.header().revision();
  return out;
}

void ToPb(std::string_view key, const RangeOptions& o, pb::RangeRequest* r) {
  r->set_key(std::string(key));
  r->set_range_end(o.range_end);
  r->set_revision(o.revision);
  r->set_limit(o.limit);
  r->set_keys_only(o.keys_only);
  r->set_count_only(o.count_only);
  r->set_serializable(o.serializable);
}

void ToPb(const Compare& c, pb::Compare* out) {
  out->set_key(c.key);
  out->set_range_end(c.range_end);
  switch (c.op) {
    case Compare::Op::kEqual: out->set_result(pb::Compare::EQUAL); break;
    case Compare::Op::kNotEqual: out->set_result(pb::Compare::NOT_EQUAL); break;
    case Compare::Op::kLess: out->set_result(pb::Compare::LESS); break;
    case Compare::Op::kGreater: out->set_result(pb::Compare::GREATER); break;
  }
  switch (c.target) {
    case Compare::Target::kValue:
      out->set_target(pb::Compare::VALUE);
      out->set_value(c.value);
      break;
    case Compare::Target::kVersion:
      out->set_target(pb::Compare::VERSION);
      out->set_version(c.number);
      break;
    case Compare::Target::kCreateRevision:
      out->set_target(pb::Compare::CREATE);
      out->set_create_revision(c.number);
      break;
    case Compare::Target::kModRevision:
      out->set_target(pb::Compare::MOD);
      out->set_mod_revision(c.number);
      break;
  }
}

void ToPb(const TxnOp& op, pb::RequestOp* out) {
  switch (op.type) {
    case TxnOp::Type::kPut: {
      auto* p = out->mutable_request_put();
      p->set_key(op.key);
      p->set_value(op.value);
      p->set_lease(op.lease);
      break;
    }
    case TxnOp::Type::kRange:
      ToPb(op.key, op.range, out->mutable_request_range());
      break;
    case TxnOp::Type::kDelete: {
      auto* d = out->mutable_request_delete_range();
      d->set_key(op.key);
      d->set_range_end(op.range_end);
      break;
    }
  }
}

TxnOpResult FromPb(const pb::ResponseOp& r) {
  TxnOpResult out;
  if (r.has_response_range()) {
    out.type = TxnOp::Type::kRange;
    out.range = FromPb(r.response_range());
  } else if (r.has_response_delete_range()) {
    out.type = TxnOp::Type::kDelete;
    out.deleted = r.response_delete_range().deleted();
  } else {
    out.type = TxnOp::Type::kPut;
  }
  return out;
}

Compare MakeCompare(std::string key, Compare::Target target, Compare::Op op) {
  Compare c;
  c.key = std::move(key);
  c.target = target;
  c.op = op;
  return c;
}

// "host:port" -> resolved address for a gRPC ipv4:/ipv6: target. Hostnames
// are resolved once, here (IPv4 preferred).
Status ResolveEndpoint(const std::string& ep, std::string* addr, int* family) {
  std::string host, port;
  if (!ep.empty() && ep[0] == '[') {
    const size_t close = ep.find(']');
    if (close == std::string::npos || close + 1 >= ep.size() || ep[close + 1] != ':') {
      return Status::Invalid("bad etcd endpoint '" + ep + "' (want [ipv6]:port)");
    }
    host = ep.substr(1, close - 1);
    port = ep.substr(close + 2);
  } else {
    const size_t colon = ep.rfind(':');
    if (colon == std::string::npos || colon == 0) {
      return Status::Invalid("bad etcd endpoint '" + ep + "' (want host:port)");
    }
    host = ep.substr(0, colon);
    port = ep.substr(colon + 1);
  }
  char* end = nullptr;
  const long p = port.empty() ? 0 : std::strtol(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p <= 0 || p > 65535) {
    return Status::Invalid("bad port in etcd endpoint '" + ep + "'");
  }
  unsigned char buf[sizeof(struct in6_addr)];
  if (inet_pton(AF_INET, host.c_str(), buf) == 1) {
    *addr = host + ":" + port;
    *family = AF_INET;
    return Status::Ok();
  }
  if (inet_pton(AF_INET6, host.c_str(), buf) == 1) {
    *addr = "[" + host + "]:" + port;
    *family = AF_INET6;
    return Status::Ok();
  }
  struct addrinfo hints = {};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  struct addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return Status::Invalid("cannot resolve etcd endpoint '" + ep + "': " + gai_strerror(rc));
  }
  std::unique_ptr<struct addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
  const struct addrinfo* pick = nullptr;
  for (const auto* ai = res; ai; ai = ai->ai_next) {
    if (ai->ai_family == AF_INET) {
      pick = ai;
      break;
    }
    if (ai->ai_family == AF_INET6 && !pick) pick = ai;
  }
  if (!pick) return Status::Invalid("etcd endpoint '" + ep + "' has no IP address");
  char text[INET6_ADDRSTRLEN] = {};
  if (pick->ai_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(pick->ai_addr)->sin_addr, text,
              sizeof text);
    *addr = std::string(text) + ":" + port;
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(pick->ai_addr)->sin6_addr, text,
              sizeof text);
    *addr = "[" + std::string(text) + "]:" + port;
  }
  *family = pick->ai_family;
  return Status::Ok();
}

std::string Trim(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  const size_t e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::string GrpcTarget(int family, const std::vector<std::string>& addrs) {
  std::string t = family == AF_INET ? "ipv4:" : "ipv6:";
  for (size_t i = 0; i < addrs.size(); ++i) t += (i ? "," : "") + addrs[i];
  return t;
}

}  // namespace

// ---- value helpers ----

std::string PrefixEnd(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    if (static_cast<unsigned char>(end.back()) < 0xff) {
      end.back() = static_cast<char>(static_cast<unsigned char>(end.back()) + 1);
      return end;
    }
    end.pop_back();  // 0xff cannot be incremented: the range runs past it
  }
  return std::string(1, '\0');
}

Compare Compare::Value(std::string key, Op op, std::string value) {
  Compare c = MakeCompare(std::move(key), Target::kValue, op);
  c.value = std::move(value);
  return c;
}
Compare Compare::Version(std::string key, Op op, int64_t version) {
  Compare c = MakeCompare(std::move(key), Target::kVersion, op);
  c.number = version;
  return c;
}
Compare Compare::CreateRevision(std::string key, Op op, int64_t revision) {
  Compare c = MakeCompare(std::move(key), Target::kCreateRevision, op);
  c.number = revision;
  return c;
}
Compare Compare::ModRevision(std::string key, Op op, int64_t revision) {
  Compare c = MakeCompare(std::move(key), Target::kModRevision, op);
  c.number = revision;
  return c;
}

TxnOp TxnOp::Put(std::string key, std::string value, int64_t lease) {
  TxnOp op;
  op.type = Type::kPut;
  op.key = std::move(key);
  op.value = std::move(value);
  op.lease = lease;
  return op;
}
TxnOp TxnOp::Range(std::string key, RangeOptions options) {
  TxnOp op;
  op.type = Type::kRange;
  op.key = std::move(key);
  op.range = std::move(options);
  return op;
}
TxnOp TxnOp::Delete(std::string key, std::string range_end) {
  TxnOp op;
  op.type = Type::kDelete;
  op.key = std::move(key);
  op.range_end = std::move(range_end);
  return op;
}

// ---- EtcdClient ----

Result<std::unique_ptr<EtcdClient>> EtcdClient::Connect(const EtcdOptions& options) {
  if (options.timeout.count() <= 0) return Status::Invalid("etcd: timeout must be positive");
  auto sh = std::make_shared<Shared>();
  sh->endpoints_text = options.endpoints;
  sh->timeout = options.timeout;
  int family = 0;
  std::string_view rest = options.endpoints;
  while (true) {
    const size_t comma = rest.find(',');
    std::string ep = Trim(rest.substr(0, comma));
    if (ep.rfind("https://", 0) == 0) {
      return Status::NotSupported("etcd endpoint '" + ep + "': TLS is not supported yet");
    }
    if (ep.rfind("http://", 0) == 0) ep = ep.substr(7);
    while (!ep.empty() && ep.back() == '/') ep.pop_back();
    if (ep.empty()) {
      return Status::Invalid("empty etcd endpoint in '" + options.endpoints +
                             "' (want host:port[,host:port...])");
    }
    std::string addr;
    int fam = 0;
    DBFS_RETURN_IF_ERROR(ResolveEndpoint(ep, &addr, &fam));
    if (family != 0 && fam != family) {
      return Status::Invalid("etcd endpoints '" + options.endpoints +
                             "' mix IPv4 and IPv6 addresses; use one family");
    }
    family = fam;
    sh->targets.push_back(addr);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }

  grpc::ChannelArguments& args = sh->args;
  args.SetLoadBalancingPolicyName("round_robin");
  // A member that comes back is used again within about a second, not after
  // gRPC's default exponential backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // Long-lived watch streams notice a silently dead member. etcd refuses
  // pings more often than every 5 s (--grpc-keepalive-min-time).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
              static_cast<int>(std::max<int64_t>(1000, options.timeout.count())));
  // Large ranges are the caller's business (use limit); never fail on size.
  args.SetMaxReceiveMessageSize(-1);
  sh->channel = grpc::CreateCustomChannel(GrpcTarget(family, sh->targets),
                                          grpc::InsecureChannelCredentials(), args);
  sh->kv = pb::KV::NewStub(sh->channel);
  sh->watch = pb::Watch::NewStub(sh->channel);
  sh->lease = pb::Lease::NewStub(sh->channel);
  sh->cluster = pb::Cluster::NewStub(sh->channel);
  sh->family = family;
  for (const auto& target : sh->targets) {
    auto m = std::make_unique<Shared::MemberConn>();
    m->target = target;
    m->channel = grpc::CreateCustomChannel(GrpcTarget(family, {target}),
                                           grpc::InsecureChannelCredentials(), args);
    m->kv = pb::KV::NewStub(m->channel);
    m->lease = pb::Lease::NewStub(m->channel);
    m->maintenance = pb::Maintenance::NewStub(m->channel);
    sh->members.push_back(std::move(m));
  }
  return std::unique_ptr<EtcdClient>(new EtcdClient(std::move(sh)));
}

EtcdClient::EtcdClient(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}
EtcdClient::~EtcdClient() = default;

const std::string& EtcdClient::endpoints() const { return shared_->endpoints_text; }
milliseconds EtcdClient::timeout() const { return shared_->timeout; }

Result<RangeResult> EtcdClient::Range(std::string_view key, const RangeOptions& options) const {
  pb::RangeRequest req;
  ToPb(key, options, &req);
  pb::RangeResponse resp;
  RequestInfo info;
  info.revision = options.revision;
  info.serializable = options.serializable && options.revision > 0;
  DBFS_RETURN_IF_ERROR(Call(*shared_, "Range", Kind::kRead, info, [&](grpc::ClientContext* ctx, const Route& route) {
    return route.kv->Range(ctx, req, &resp);
  }));
  return FromPb(resp);
}

Result<int64_t> EtcdClient::Put(std::string_view key, std::string_view value, int64_t lease) const {
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  RequestInfo info;
  info.bytes = req.ByteSizeLong();
  DBFS_RETURN_IF_ERROR(Call(*shared_, "Put", Kind::kWrite, info, [&](grpc::ClientContext* ctx, const Route& route) {
    return route.kv->Put(ctx, req, &resp);
  }));
  shared_->NoteTerm(resp.header().raft_term());
  return resp.header().revision();
}

Result<DeleteResult> EtcdClient::DeleteRange(std::string_view key, std::string_view range_end) const {
  pb::DeleteRangeRequest req;
  req.set_key(std::string(key));
  req.set_range_end(std::string(range_end));
  pb::DeleteRangeResponse resp;
  DBFS_RETURN_IF_ERROR(Call(*shared_, "DeleteRange", Kind::kWrite, RequestInfo{},
                            [&](grpc::ClientContext* ctx, const Route& route) {
                              return route.kv->DeleteRange(ctx, req, &resp);
                            }));
  shared_->NoteTerm(resp.header().raft_term());
  DeleteResult out;
  out.deleted = resp.deleted();
  out.revision = resp.header().revision();
  return out;
}

Result<TxnResult> EtcdClient::Txn(const TxnRequest& request) const {
  pb::TxnRequest req;
  bool read_only = true;
  for (const auto& c : request.compares) ToPb(c, req.add_compare());
  for (const auto& op : request.success) {
    ToPb(op, req.add_success());
    read_only = read_only && op.type == TxnOp::Type::kRange;
  }
  for (const auto& op : request.failure) {
    ToPb(op, req.add_failure());
    read_only = read_only && op.type == TxnOp::Type::kRange;
  }
  // etcd 3.4 serves a txn without operations from the member's local,
  // possibly lagging, state (isTxnSerializable is vacuously true for it):
  // a compare-only validation could miss an acknowledged write. One
  // linearizable count-only range makes etcd read at the quorum's commit
  // point; its response is dropped below.
  const bool padded = request.success.empty() && request.failure.empty();
  if (padded) {
    RangeOptions probe;
    probe.count_only = true;
    probe.limit = 1;
    ToPb(request.compares.empty() ? std::string_view("\0", 1) : std::string_view(request.compares[0].key),
         probe, req.add_success()->mutable_request_range());
  }
  RequestInfo info;
  info.bytes = req.ByteSizeLong();
  info.compares = request.compares.size();
  info.success = request.success.size();
  info.failure = request.failure.size();
  pb::TxnResponse resp;
  DBFS_RETURN_IF_ERROR(Call(*shared_, "Txn", read_only ? Kind::kRead : Kind::kWrite, info,
                            [&](grpc::ClientContext* ctx, const Route& route) {
                              return route.kv->Txn(ctx, req, &resp);
                            }));
  shared_->NoteTerm(resp.header().raft_term());
  TxnResult out;
  out.succeeded = resp.succeeded();
  out.revision = resp.header().revision();
  if (!padded) {
    out.responses.reserve(resp.responses_size());
    for (const auto& r : resp.responses()) out.responses.push_back(FromPb(r));
  }
  return out;
}

Status EtcdClient::Compact(int64_t revision, bool physical) const {
  pb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(physical);
  pb::CompactionResponse resp;
  RequestInfo info;
  info.revision = revision;
  // Compacting twice to the same revision changes nothing (the second says
  // "compacted"), so a retry is safe.
  return Call(*shared_, "Compact", Kind::kIdempotentWrite, info,
              [&](grpc::ClientContext* ctx, const Route& route) {
                return route.kv->Compact(ctx, req, &resp);
              });
}

Result<LeaseGrant> EtcdClient::GrantLease(int64_t ttl_seconds) const {
  if (ttl_seconds <= 0) return Status::Invalid("etcd: lease TTL must be positive");
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl_seconds);
  pb::LeaseGrantResponse resp;
  DBFS_RETURN_IF_ERROR(Call(*shared_, "LeaseGrant", Kind::kWrite, RequestInfo{},
                            [&](grpc::ClientContext* ctx, const Route& route) {
                              return route.lease->LeaseGrant(ctx, req, &resp);
                            }));
  if (!resp.error().empty()) {
    return Status::IOError(shared_->Prefix("LeaseGrant") + ": " + resp.error());
  }
  return LeaseGrant{resp.id(), resp.ttl()};
}

Status EtcdClient::RevokeLease(int64_t id) const {
  pb::LeaseRevokeRequest req;
  req.set_id(id);
  pb::LeaseRevokeResponse resp;
  return Call(*shared_, fmt::format("LeaseRevoke {:x}", id), Kind::kWrite, RequestInfo{},
              [&](grpc::ClientContext* ctx, const Route& route) {
                return route.lease->LeaseRevoke(ctx, req, &resp);
              });
}

namespace {

// One keep-alive round trip on its own short stream, so that a member that
// stops answering costs one deadline, never a hung stream.
Result<int64_t> KeepAliveOnceUntil(const EtcdClient::Shared& sh, int64_t id,
                                   Clock::time_point deadline) {
  pb::LeaseKeepAliveResponse resp;
  const std::string what = fmt::format("LeaseKeepAlive {:x}", id);
  DBFS_RETURN_IF_ERROR(Call(
      sh, what, Kind::kRead, RequestInfo{},
      [&](grpc::ClientContext* ctx, const Route& route) {
        auto stream = route.lease->LeaseKeepAlive(ctx);
        pb::LeaseKeepAliveRequest req;
        req.set_id(id);
        bool got = false;
        if (stream->Write(req)) {
          stream->WritesDone();
          got = stream->Read(&resp);
        }
        if (!got) ctx->TryCancel();  // Finish must not wait for a stream we gave up on
        grpc::Status st = stream->Finish();
        if (got) return grpc::Status::OK;
        if (st.ok()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "stream closed without a reply");
        return st;
      },
      deadline));
  if (resp.ttl() <= 0) {
    return Status::NotFound(sh.Prefix(what) + ": lease expired or revoked");
  }
  return resp.ttl();
}

}  // namespace

Result<int64_t> EtcdClient::KeepAliveOnce(int64_t id) const {
  return KeepAliveOnceUntil(*shared_, id, Clock::now() + shared_->timeout);
}

Result<std::vector<Member>> EtcdClient::MemberList() const {
  pb::MemberListRequest req;
  pb::MemberListResponse resp;
  DBFS_RETURN_IF_ERROR(Call(*shared_, "MemberList", Kind::kRead, RequestInfo{},
                            [&](grpc::ClientContext* ctx, const Route&) {
                              return shared_->cluster->MemberList(ctx, req, &resp);
                            }));
  std::vector<Member> out;
  for (const auto& m : resp.members()) {
    Member x;
    x.id = m.id();
    x.name = m.name();
    x.peer_urls.assign(m.peerurls().begin(), m.peerurls().end());
    x.client_urls.assign(m.clienturls().begin(), m.clienturls().end());
    x.is_learner = m.islearner();
    out.push_back(std::move(x));
  }
  return out;
}

Result<MemberStatus> EtcdClient::StatusOf(std::string_view endpoint) const {
  std::string addr;
  int family = 0;
  DBFS_RETURN_IF_ERROR(ResolveEndpoint(std::string(endpoint), &addr, &family));
  // That member's own channel (the balanced one would pick any member); one
  // made for the call if it is not among our endpoints.
  pb::Maintenance::Stub* stub = nullptr;
  std::unique_ptr<pb::Maintenance::Stub> own;
  for (const auto& m : shared_->members) {
    if (m->target == addr) stub = m->maintenance.get();
  }
  if (!stub) {
    own = pb::Maintenance::NewStub(grpc::CreateCustomChannel(
        GrpcTarget(family, {addr}), grpc::InsecureChannelCredentials(), shared_->args));
    stub = own.get();
  }
  pb::StatusRequest req;
  pb::StatusResponse resp;
  const Clock::time_point deadline = Clock::now() + shared_->timeout;
  grpc::ClientContext ctx;
  ctx.set_deadline(SystemDeadline(deadline));
  ctx.set_wait_for_ready(true);
  grpc::Status st = stub->Status(&ctx, req, &resp);
  if (!st.ok()) {
    return MapError(*shared_, fmt::format("Status of {}", endpoint), st, Kind::kRead, RequestInfo{});
  }
  MemberStatus out;
  out.member_id = resp.header().member_id();
  out.leader = resp.leader();
  out.version = resp.version();
  out.db_size = resp.dbsize();
  out.raft_index = resp.raftindex();
  out.raft_term = resp.raftterm();
  out.revision = resp.header().revision();
  out.errors.assign(resp.errors().begin(), resp.errors().end());
  return out;
}

// ---- Watch ----

struct Watch::State {
  std::shared_ptr<const EtcdClient::Shared> shared;
  std::string key;
  WatchOptions options;
  WatchCallback callback;

  // The start of the next stream; 0 ("now") only until the first stream is
  // created, then pinned to a revision.
  std::atomic<int64_t> next_revision{0};
  std::atomic<bool> finished{false};

  // Lock order: mu is a leaf (never held while calling the callback or gRPC
  // blocking calls, except ClientContext::TryCancel, which does not block).
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool created = false;                 // the first stream was confirmed
  Status start_error;                   // terminal before created
  grpc::ClientContext* stream_ctx = nullptr;  // the live stream, for Stop()
  std::thread thread;

  std::string What() const { return "Watch " + key; }
  void Deliver(const WatchBatch& b) { callback(b); }
  void Run();
  // Runs one stream until it breaks or ends; true when the watch is over.
  bool RunStream();
};

bool Watch::State::RunStream() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_wait_for_ready(true);
  ctx->AddMetadata("hasleader", "true");
  {
    std::lock_guard<std::mutex> l(mu);
    if (stopping) return true;
    stream_ctx = ctx.get();
  }
  auto stream = shared->watch->Watch(ctx.get());
  pb::WatchRequest req;
  auto* create = req.mutable_create_request();
  create->set_key(key);
  create->set_range_end(options.range_end);
  const int64_t resume = next_revision.load();
  create->set_start_revision(resume);
  create->set_progress_notify(options.progress_notify);

  bool terminal = false;
  pb::WatchResponse resp;
  bool ok = stream->Write(req);
  while (ok && stream->Read(&resp)) {
    if (resp.created()) {
      // A watch from "now" is pinned to a revision at once, so a reconnect
      // resumes exactly where this stream began.
      if (next_revision.load() == 0) next_revision.store(resp.header().revision() + 1);
      {
        std::lock_guard<std::mutex> l(mu);
        created = true;
      }
      cv.notify_all();
      if (resume > 0 && resume != options.start_revision) spdlog::info("{}: {}: resumed at revision {}", shared->Prefix("watch"), key, resume);
      if (!resp.canceled()) continue;
    }
    if (resp.canceled() || resp.compact_revision() > 0) {
      WatchBatch b;
      if (resp.compact_revision() > 0) {
        b.kind = WatchBatch::Kind::kCompacted;
        b.compact_revision = resp.compact_revision();
        b.status = Status::Compacted(fmt::format(
            "{}: revision {} has been compacted; the oldest revision available is {}",
            shared->Prefix(What()), next_revision.load(), resp.compact_revision()));
      } else {
        b.kind = WatchBatch::Kind::kCanceled;
        b.status = Status::IOError(fmt::format("{}: canceled by the server: {}",
                                               shared->Prefix(What()), resp.cancel_reason()));
      }
      {
        std::lock_guard<std::mutex> l(mu);
        if (!created) start_error = b.status;
      }
      finished.store(true);
      cv.notify_all();
      Deliver(b);
      terminal = true;
      break;
    }
    WatchBatch b;
    if (resp.events_size() == 0) {
      // Progress notification: etcd sends it only to a watcher that has
      // been sent everything up to the header revision.
      b.kind = WatchBatch::Kind::kProgress;
      b.revision = resp.header().revision();
      if (b.revision + 1 > next_revision.load()) next_revision.store(b.revision + 1);
    } else {
      b.kind = WatchBatch::Kind::kEvents;
      b.events.reserve(resp.events_size());
      for (const auto& e : resp.events()) {
        WatchBatch::Event ev;
        ev.is_delete = e.type() == mvccpb::Event::DELETE;
        ev.kv = FromPb(e.kv());
        b.events.push_back(std::move(ev));
      }
      // etcd never splits one revision's events over two responses.
      b.revision = b.events.back().kv.mod_revision;
      next_revision.store(b.revision + 1);
    }
    Deliver(b);
  }
  if (terminal) ctx->TryCancel();  // the server keeps the stream open; end it
  grpc::Status st = stream->Finish();
  {
    std::lock_guard<std::mutex> l(mu);
    stream_ctx = nullptr;
    if (stopping) return true;
  }
  if (terminal) return true;
  if (st.ok()) st = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server closed the stream");
  WatchBatch b;
  b.kind = WatchBatch::Kind::kDisconnected;
  b.status = MapError(*shared, What(), st, Kind::kRead, RequestInfo{});
  spdlog::warn("{}; reconnecting from revision {}", b.status.ToString(), next_revision.load());
  bool was_created;
  {
    std::lock_guard<std::mutex> l(mu);
    was_created = created;
  }
  if (was_created) Deliver(b);
  return false;
}

void Watch::State::Run() {
  milliseconds backoff{20};
  while (!RunStream()) {
    std::unique_lock<std::mutex> l(mu);
    // Pace reconnects to a cluster that keeps refusing; Stop() wakes us.
    cv.wait_for(l, backoff, [&] { return stopping; });
    if (stopping) return;
    backoff = std::min(backoff * 2, milliseconds(1000));
  }
}

Watch::Watch(std::shared_ptr<State> state) : state_(std::move(state)) {}
Watch::~Watch() { Stop(); }

void Watch::Stop() {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->stopping = true;
    if (state_->stream_ctx) state_->stream_ctx->TryCancel();
  }
  state_->cv.notify_all();
  if (!state_->thread.joinable()) return;
  if (state_->thread.get_id() == std::this_thread::get_id()) {
    state_->thread.detach();  // stopped from its own callback: the thread ends after it returns
  } else {
    state_->thread.join();
  }
}

int64_t Watch::next_revision() const { return state_->next_revision.load(); }
bool Watch::finished() const { return state_->finished.load(); }

Result<std::unique_ptr<Watch>> EtcdClient::StartWatch(std::string_view key,
                                                      const WatchOptions& options,
                                                      WatchCallback callback) const {
  auto st = std::make_shared<Watch::State>();
  st->shared = shared_;
  st->key = std::string(key);
  st->options = options;
  st->callback = std::move(callback);
  st->next_revision.store(options.start_revision);
  // The thread holds its own reference: a watch stopped from its callback
  // detaches, and the state must outlive that last callback.
  st->thread = std::thread([st] { st->Run(); });
  std::unique_ptr<Watch> w(new Watch(st));
  const auto deadline = Clock::now() + shared_->timeout;
  Status error;
  {
    std::unique_lock<std::mutex> l(st->mu);
    const bool done = st->cv.wait_until(l, deadline, [&] {
      return st->created || !st->start_error.ok();
    });
    if (!done) {
      error = Status::IOError(fmt::format("{}: no member confirmed the watch within {:.2f} s",
                                          shared_->Prefix(st->What()), shared_->TimeoutSeconds()));
    } else if (!st->created) {
      error = st->start_error;
    }
  }
  if (!error.ok()) {
    w->Stop();
    return error;
  }
  return w;
}

// ---- LeaseKeeper ----

struct LeaseKeeper::State {
  std::shared_ptr<const EtcdClient::Shared> shared;
  int64_t id = 0;
  milliseconds ttl{0};
  std::function<void(const Status&)> on_lost;

  std::atomic<bool> lost{false};
  std::atomic<uint64_t> renewals{0};
  std::mutex mu;  // leaf
  std::condition_variable cv;
  bool stopping = false;
  std::thread thread;

  bool WaitUntil(Clock::time_point t) {
    std::unique_lock<std::mutex> l(mu);
    return !cv.wait_until(l, t, [&] { return stopping; });
  }
  void Run();
};

void LeaseKeeper::State::Run() {
  // The lease is known alive until `expiry`: the send time of the last
  // successful renewal plus the TTL (the server restarts its clock on
  // receipt, which is later, so this errs on the early side).
  Clock::time_point expiry = Clock::now() + ttl;
  Clock::time_point next = Clock::now() + ttl / 3;
  Status last_error;
  while (WaitUntil(next)) {
    const Clock::time_point sent = Clock::now();
    if (sent >= expiry) break;
    const Clock::time_point deadline = std::min(sent + shared->timeout, expiry);
    Result<int64_t> r = KeepAliveOnceUntil(*shared, id, deadline);
    if (r.ok()) {
      renewals.fetch_add(1);
      const milliseconds granted = std::chrono::seconds(*r);
      expiry = sent + granted;
      next = sent + granted / 3;
      continue;
    }
    last_error = r.status();
    if (r.status().code() == Code::kNotFound) {
      expiry = sent;  // expired on the server: lost for good
      break;
    }
    spdlog::warn("{} (will retry until the lease's TTL runs out)", last_error.ToString());
    next = std::min(Clock::now() + milliseconds(100), expiry);
  }
  {
    std::lock_guard<std::mutex> l(mu);
    if (stopping) return;
  }
  Status s = Status::IOError(
      fmt::format("{}: lease {:x} lost: not renewed within its TTL of {} s{}{}",
                  shared->Prefix("LeaseKeepAlive"), id, ttl.count() / 1000,
                  last_error.ok() ? "" : "; last error: ", last_error.ToString()));
  if (last_error.code() == Code::kNotFound) s = last_error;
  spdlog::error("{}", s.ToString());
  if (on_lost) on_lost(s);
  lost.store(true);  // after the callback: whoever sees lost() sees its effects
}

LeaseKeeper::LeaseKeeper(std::shared_ptr<State> state) : state_(std::move(state)) {}
LeaseKeeper::~LeaseKeeper() { Stop(); }

void LeaseKeeper::Stop() {
  {
    std::lock_guard<std::mutex> l(state_->mu);
    state_->stopping = true;
  }
  state_->cv.notify_all();
  if (!state_->thread.joinable()) return;
  if (state_->thread.get_id() == std::this_thread::get_id()) {
    state_->thread.detach();
  } else {
    state_->thread.join();
  }
}

bool LeaseKeeper::lost() const { return state_->lost.load(); }
uint64_t LeaseKeeper::renewals() const { return state_->renewals.load(); }

std::unique_ptr<LeaseKeeper> EtcdClient::KeepAlive(int64_t id, int64_t ttl_seconds,
                                                   std::function<void(const Status&)> on_lost) const {
  auto st = std::make_shared<LeaseKeeper::State>();
  st->shared = shared_;
  st->id = id;
  st->ttl = std::chrono::seconds(std::max<int64_t>(1, ttl_seconds));
  st->on_lost = std::move(on_lost);
  st->thread = std::thread([st] { st->Run(); });
  return std::unique_ptr<LeaseKeeper>(new LeaseKeeper(st));
}

}  // namespace dbfs::mvcc::cluster
