#include "mvcc/cluster/cluster_store.h"

#include <spdlog/spdlog.h>
#include <time.h>

#include <algorithm>
#include <limits>

#include "kvstore/coding.h"
#include "mvcc/history_records.h"
#include "mvcc/superblock.h"

namespace dbfs::mvcc::cluster {
namespace {

constexpr char kTagTomb = '\0';
constexpr char kTagLiveValue = '\1';
constexpr int kMaxCommitAttempts = 32;
constexpr int64_t kScanPage = 512;
constexpr size_t kDeleteBatch = 1000;
constexpr const char* kSuperMagic = "dbfs-cluster-volume";
constexpr uint32_t kClusterFormat = 1;
// statfs of a cluster whose capacity is unknown (no manager): 1 PiB.
constexpr uint64_t kUnknownCapacity = 1ull << 50;

uint64_t RealtimeNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

std::string Tagged(const std::optional<std::string>& v) {
  if (!v) return std::string(1, kTagTomb);
  std::string out;
  out.reserve(v->size() + 1);
  out.push_back(kTagLiveValue);
  out.append(*v);
  return out;
}

// nullopt for a tombstone (or an empty value, which no writer produces).
std::optional<std::string_view> Untag(std::string_view raw) {
  if (raw.empty() || raw[0] != kTagLiveValue) return std::nullopt;
  return raw.substr(1);
}

std::string Hex(std::string_view bytes) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(d[c >> 4]);
    out.push_back(d[c & 15]);
  }
  return out;
}

std::string Hex32(uint32_t v) {
  char b[9];
  snprintf(b, sizeof b, "%08x", v);
  return b;
}

std::string Hex64(uint64_t v) {
  char b[17];
  snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>((nib(hex[i]) << 4) | nib(hex[i + 1])));
  }
  return out;
}

bool ValidName(std::string_view n) {
  if (n.empty() || n.size() > 200) return false;
  for (char c : n) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  }
  return n != "." && n != "..";
}

bool InDoubt(const Status& s) {
  return s.code() == Code::kIOError && s.message().find("outcome unknown") != std::string::npos;
}

// Superblock value: "key=value" lines, readable with etcdctl.
struct ClusterSuper {
  uint32_t format = kClusterFormat;
  std::string uuid;  // 16 bytes
  uint32_t chunk_size = 1 << 20;
  std::string pool, ceph_conf, ceph_user;
  uint64_t created_ns = 0;
};

std::string EncodeSuper(const ClusterSuper& s) {
  std::string v = std::string(kSuperMagic) + "\n";
  v += "format=" + std::to_string(s.format) + "\n";
  v += "uuid=" + Hex(s.uuid) + "\n";
  v += "chunk_size=" + std::to_string(s.chunk_size) + "\n";
  v += "pool=" + s.pool + "\n";
  v += "ceph_conf=" + s.ceph_conf + "\n";
  v += "ceph_user=" + s.ceph_user + "\n";
  v += "created_ns=" + std::to_string(s.created_ns) + "\n";
  return v;
}

Result<ClusterSuper> DecodeSuper(std::string_view v, const std::string& where) {
  ClusterSuper s;
  size_t pos = 0;
  bool magic = false, have_format = false;
  while (pos < v.size()) {
    size_t nl = v.find('\n', pos);
    if (nl == std::string_view::npos) nl = v.size();
    std::string_view line = v.substr(pos, nl - pos);
    pos = nl + 1;
    if (!magic) {
      if (line != kSuperMagic) break;
      magic = true;
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view k = line.substr(0, eq);
    std::string val(line.substr(eq + 1));
    try {
      if (k == "format") {
        s.format = static_cast<uint32_t>(std::stoul(val));
        have_format = true;
      } else if (k == "uuid") {
        s.uuid = Unhex(val);
      } else if (k == "chunk_size") {
        s.chunk_size = static_cast<uint32_t>(std::stoul(val));
      } else if (k == "pool") {
        s.pool = val;
      } else if (k == "ceph_conf") {
        s.ceph_conf = val;
      } else if (k == "ceph_user") {
        s.ceph_user = val;
      } else if (k == "created_ns") {
        s.created_ns = std::stoull(val);
      }
    } catch (const std::exception&) {
      return Status::Corruption(where + ": superblock field '" + std::string(k) + "' is malformed");
    }
  }
  if (!magic) return Status::Invalid(where + " is not a DBFS cluster volume (bad superblock)");
  if (!have_format || s.format != kClusterFormat) {
    return Status::NotSupported(where + ": cluster format version " + std::to_string(s.format) +
                                " is not supported (this build supports " +
                                std::to_string(kClusterFormat) + ")");
  }
  if (s.uuid.size() != 16 || s.pool.empty() || s.chunk_size < kMinBlockSize ||
      s.chunk_size > kMaxChunkSize || (s.chunk_size & (s.chunk_size - 1)) != 0) {
    return Status::Corruption(where + ": superblock is incomplete or has invalid geometry");
  }
  return s;
}

std::string VolumePrefix(const std::string& name) { return "/dbfs/" + name + "/"; }

// Checks that the server takes transactions of the size the store needs.
Status ProbeLimits(const EtcdClient& etcd, const std::string& prefix) {
  TxnRequest probe;
  for (int i = 0; i < 200; ++i) {
    probe.compares.push_back(Compare::ModRevision(prefix + "probe", Compare::Op::kEqual, 0));
  }
  auto r = etcd.Txn(probe);
  if (r.ok()) return Status::Ok();
  if (r.status().code() == Code::kInvalid) {
    return Status::Invalid("the etcd cluster at " + etcd.endpoints() +
                           " runs with too small limits for DBFS: start every member with "
                           "--max-txn-ops=" + std::to_string(kRequiredMaxTxnOps) +
                           " --max-request-bytes=" + std::to_string(kRequiredMaxRequestBytes) +
                           " (" + r.status().message() + ")");
  }
  return r.status();
}

Result<std::unique_ptr<EtcdClient>> ConnectEtcd(const ClusterStoreOptions& o) {
  EtcdOptions eo;
  eo.endpoints = o.volume.endpoints;
  eo.timeout = o.timeout;
  return EtcdClient::Connect(eo);
}

Result<std::unique_ptr<RadosClient>> ConnectRados(const ClusterVolume& v,
                                                  std::chrono::milliseconds timeout) {
  RadosOptions ro;
  ro.pool = v.pool;
  ro.conf_path = v.ceph_conf;
  if (!v.ceph_user.empty()) ro.user = v.ceph_user;
  ro.timeout = timeout;
  return RadosClient::Connect(ro);
}

}  // namespace

// ---- URLs ----

bool IsClusterSpec(const std::string& spec) { return spec.rfind("etcd://", 0) == 0; }

Result<ClusterVolume> ParseMetaUrl(const std::string& url) {
  const std::string form = "etcd://HOST:PORT[,HOST:PORT...]/NAME";
  if (!IsClusterSpec(url)) return Status::Invalid("'" + url + "' is not of the form " + form);
  std::string rest = url.substr(7);
  const size_t slash = rest.find('/');
  if (slash == std::string::npos || slash == 0) {
    return Status::Invalid("'" + url + "' names no volume: expected " + form);
  }
  ClusterVolume v;
  v.endpoints = rest.substr(0, slash);
  v.name = rest.substr(slash + 1);
  if (!v.name.empty() && v.name.back() == '/') v.name.pop_back();
  if (!ValidName(v.name)) {
    return Status::Invalid("'" + url + "': a volume name has 1 to 200 of [A-Za-z0-9._-]");
  }
  for (size_t b = 0; b <= v.endpoints.size();) {
    size_t e = v.endpoints.find(',', b);
    if (e == std::string::npos) e = v.endpoints.size();
    const std::string ep = v.endpoints.substr(b, e - b);
    const size_t colon = ep.rfind(':');
    if (ep.empty() || colon == std::string::npos || colon == 0 || colon + 1 == ep.size() ||
        ep.find_first_not_of("0123456789", colon + 1) != std::string::npos) {
      return Status::Invalid("'" + url + "': endpoint '" + ep + "' is not HOST:PORT (" + form + ")");
    }
    b = e + 1;
  }
  return v;
}

Status ParseDataUrl(const std::string& url, ClusterVolume* v) {
  const std::string form = "rados://POOL[?conf=PATH&id=USER]";
  if (url.rfind("rados://", 0) != 0) {
    return Status::Invalid("'" + url + "' is not of the form " + form);
  }
  std::string rest = url.substr(8);
  const size_t q = rest.find('?');
  v->pool = rest.substr(0, q);
  if (v->pool.empty() || v->pool.find('/') != std::string::npos) {
    return Status::Invalid("'" + url + "' names no pool: expected " + form);
  }
  if (q == std::string::npos) return Status::Ok();
  std::string query = rest.substr(q + 1);
  for (size_t b = 0; b <= query.size();) {
    size_t e = query.find('&', b);
    if (e == std::string::npos) e = query.size();
    const std::string kv = query.substr(b, e - b);
    const size_t eq = kv.find('=');
    const std::string k = kv.substr(0, eq);
    const std::string val = eq == std::string::npos ? "" : kv.substr(eq + 1);
    if (k == "conf" && !val.empty()) {
      v->ceph_conf = val;
    } else if (k == "id" && !val.empty()) {
      v->ceph_user = val;
    } else {
      return Status::Invalid("'" + url + "': unknown or empty parameter '" + kv + "' (" + form +
                             ")");
    }
    b = e + 1;
  }
  return Status::Ok();
}

// ---- keys ----

std::string ClusterStore::TableKey(Table t, std::string_view key) const {
  std::string k = prefix_;
  k.append("t/");
  k.push_back(static_cast<char>(t));
  k.push_back('/');
  k.append(key);
  return k;
}

std::string ClusterStore::ObjectName(uint32_t segment) const {
  return uuid_hex_ + "." + Hex32(segment);
}

// ---- create / open ----

Status ClusterStore::Create(const ClusterStoreOptions& opts, bool force, uint32_t chunk_size) {
  const ClusterVolume& v = opts.volume;
  if (!ValidName(v.name)) return Status::Invalid("invalid cluster volume name '" + v.name + "'");
  if (v.pool.empty()) return Status::Invalid("a cluster volume needs a data pool (--data rados://POOL)");
  DBFS_ASSIGN_OR_RETURN(auto etcd, ConnectEtcd(opts));
  const std::string prefix = VolumePrefix(v.name);
  DBFS_RETURN_IF_ERROR(ProbeLimits(*etcd, prefix));
  DBFS_ASSIGN_OR_RETURN(auto rados, ConnectRados(v, opts.timeout));
  DBFS_ASSIGN_OR_RETURN(RangeResult old, etcd->Range(prefix + "super"));
  if (!old.kvs.empty()) {
    if (!force) {
      return Status::Exists("cluster volume '" + v.name + "' exists at " + v.endpoints +
                            " (--force replaces it)");
    }
    // Replace: the old volume's data objects, then its keys.
    auto sb = DecodeSuper(old.kvs[0].value, v.name);
    if (sb.ok()) {
      DBFS_ASSIGN_OR_RETURN(auto names, rados->ListObjects(Hex(sb->uuid) + "."));
      for (const std::string& n : names) DBFS_RETURN_IF_ERROR(rados->Remove(n));
    }
    DBFS_RETURN_IF_ERROR(etcd->DeleteRange(prefix, PrefixEnd(prefix)).status());
  }
  Superblock local = NewSuperblock();
  ClusterSuper s;
  s.uuid = local.uuid;
  s.chunk_size = chunk_size;
  s.pool = v.pool;
  s.ceph_conf = v.ceph_conf;
  s.ceph_user = v.ceph_user;
  s.created_ns = RealtimeNs();
  TxnRequest t;
  t.compares.push_back(Compare::CreateRevision(prefix + "super", Compare::Op::kEqual, 0));
  t.success.push_back(TxnOp::Put(prefix + "super", EncodeSuper(s)));
  t.success.push_back(TxnOp::Put(prefix + "head", ""));
  t.success.push_back(TxnOp::Put(prefix + "ctr/ino", "2"));
  t.success.push_back(TxnOp::Put(prefix + "ctr/seg", "1"));
  t.success.push_back(TxnOp::Put(prefix + "ctr/mount", "1"));
  DBFS_ASSIGN_OR_RETURN(TxnResult r, etcd->Txn(t));
  if (!r.succeeded) {
    return Status::Exists("cluster volume '" + v.name + "' was created concurrently");
  }
  return Status::Ok();
}

Result<std::unique_ptr<ClusterStore>> ClusterStore::Open(const ClusterStoreOptions& opts) {
  std::unique_ptr<ClusterStore> s(new ClusterStore());
  s->opts_ = opts;
  s->prefix_ = VolumePrefix(opts.volume.name);
  if (!ValidName(opts.volume.name)) {
    return Status::Invalid("invalid cluster volume name '" + opts.volume.name + "'");
  }
  DBFS_ASSIGN_OR_RETURN(s->etcd_, ConnectEtcd(opts));
  DBFS_RETURN_IF_ERROR(s->Start());
  return s;
}

Status ClusterStore::Start() {
  const std::string where = "etcd://" + opts_.volume.endpoints + "/" + opts_.volume.name;
  DBFS_ASSIGN_OR_RETURN(RangeResult sr, etcd_->Range(prefix_ + "super"));
  if (sr.kvs.empty()) return Status::NotFound(where + " is not a DBFS volume (no superblock)");
  DBFS_ASSIGN_OR_RETURN(ClusterSuper sb, DecodeSuper(sr.kvs[0].value, where));
  DBFS_RETURN_IF_ERROR(ProbeLimits(*etcd_, prefix_));
  info_.uuid = sb.uuid;
  info_.chunk_size = sb.chunk_size;
  info_.location = where;
  uuid_hex_ = Hex(sb.uuid);
  // The data pool is the volume's; how to reach the Ceph cluster may be
  // given per mount (conf path and user are machine-local facts).
  ClusterVolume data = opts_.volume;
  data.pool = sb.pool;
  if (data.ceph_conf.empty()) data.ceph_conf = sb.ceph_conf;
  if (data.ceph_user.empty() || data.ceph_user == "admin") {
    if (!sb.ceph_user.empty()) data.ceph_user = sb.ceph_user;
  }
  DBFS_ASSIGN_OR_RETURN(rados_, ConnectRados(data, opts_.timeout));

  {
    // The session (also of a read-only open, e.g. fsck -n beside live
    // mounts): published before the first revision is read, so no
    // compaction passes what this mount is about to read.
    DBFS_ASSIGN_OR_RETURN(mount_id_, Reserve(prefix_ + "ctr/mount", 1));
    DBFS_ASSIGN_OR_RETURN(LeaseGrant g, etcd_->GrantLease(opts_.lease_ttl_s));
    lease_ = g.id;
    DBFS_RETURN_IF_ERROR(PublishSession(0));
    keeper_ = etcd_->KeepAlive(lease_, g.ttl_seconds, [this](const Status& st) {
      spdlog::warn("cluster volume {}: session lease lost ({}); renewing", opts_.volume.name,
                   st.ToString());
      lease_lost_ = true;
    });
  }
  DBFS_ASSIGN_OR_RETURN(RangeResult head, etcd_->Range(prefix_ + "head"));
  if (head.kvs.empty()) return Status::Corruption(where + ": the head key is missing");
  visible_.store(static_cast<Csn>(head.kvs[0].mod_revision));
  DBFS_RETURN_IF_ERROR(PublishSession(visible_csn()));

  WatchOptions wo;
  wo.start_revision = static_cast<int64_t>(visible_csn()) + 1;
  wo.range_end = PrefixEnd(prefix_);
  DBFS_ASSIGN_OR_RETURN(watch_, etcd_->StartWatch(prefix_, wo,
                                                  [this](const WatchBatch& b) { OnWatch(b); }));
  DBFS_ASSIGN_OR_RETURN(auto snaps, LoadSnapshots());
  DBFS_ASSIGN_OR_RETURN(RangeResult hz, etcd_->Range(prefix_ + "horizon"));
  {
    std::lock_guard g(snap_mu_);
    named_ = std::move(snaps);
    if (!hz.kvs.empty() && hz.kvs[0].value.size() == 8) horizon_ = DecodeLE64(hz.kvs[0].value.data());
  }
  maintenance_ = std::thread([this] { MaintenanceLoop(); });
  return Status::Ok();
}

ClusterStore::~ClusterStore() {
  Status st = Close();
  if (!st.ok()) spdlog::error("closing the cluster store failed: {}", st.ToString());
}

void ClusterStore::StopBackground() {
  closed_ = true;
  {
    std::lock_guard g(bg_mu_);
    stop_ = true;
  }
  bg_cv_.notify_all();
  if (maintenance_.joinable()) maintenance_.join();
  watch_.reset();
  if (keeper_) keeper_->Stop();
  keeper_.reset();
}

Status ClusterStore::Close() {
  if (closed_) return Status::Ok();
  StopBackground();
  if (lease_ != 0 && etcd_) {
    // Ends the session at once (its published state goes with the lease).
    Status st = etcd_->RevokeLease(lease_);
    if (!st.ok() && st.code() != Code::kNotFound) {
      spdlog::warn("cluster volume {}: revoking the session lease: {}", opts_.volume.name,
                   st.ToString());
    }
    lease_ = 0;
  }
  return Status::Ok();
}

void ClusterStore::TEST_Abandon() {
  StopBackground();
  lease_ = 0;  // left to expire, as a killed mount's would
}

Status ClusterStore::health() const {
  if (closed_) return Status::ReadOnly("the cluster store is closed");
  return Status::Ok();
}

// ---- counters and sessions ----

Result<uint64_t> ClusterStore::Reserve(const std::string& key, uint64_t n) {
  for (int attempt = 0; attempt < 1000; ++attempt) {
    DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(key));
    ++ranges_;
    if (r.kvs.empty()) return Status::Corruption("counter " + key + " is missing");
    uint64_t v = 0;
    try {
      v = std::stoull(r.kvs[0].value);
    } catch (const std::exception&) {
      return Status::Corruption("counter " + key + " is malformed");
    }
    TxnRequest t;
    t.compares.push_back(Compare::ModRevision(key, Compare::Op::kEqual, r.kvs[0].mod_revision));
    t.success.push_back(TxnOp::Put(key, std::to_string(v + n)));
    auto res = etcd_->Txn(t);
    ++txns_;
    if (!res.ok()) {
      if (!InDoubt(res.status())) return res.status();
      continue;  // re-read: if it applied, the values are skipped, never reused
    }
    if (res->succeeded) return v;
  }
  return Status::Busy("counter " + key + " kept changing");
}

Status ClusterStore::PublishSession(Csn oldest) {
  std::string v;
  PutLE64(&v, oldest);
  PutLE64(&v, window_ns_.load());
  ++txns_;
  return etcd_->Put(prefix_ + "mounts/" + Hex64(mount_id_), v, lease_).status();
}

void ClusterStore::OnWatch(const WatchBatch& b) {
  if (b.kind != WatchBatch::Kind::kEvents) {
    if (b.kind == WatchBatch::Kind::kCompacted || b.kind == WatchBatch::Kind::kCanceled) {
      // visible_csn still follows the maintenance pass; remote changes reach
      // the kernel only through its cache timeouts from now on.
      spdlog::error("cluster volume {}: the volume watch ended: {}", opts_.volume.name,
                    b.status.ToString());
    }
    return;
  }
  const std::string head = prefix_ + "head", rows = prefix_ + "t/";
  std::vector<KeyRef> changed;
  int64_t last_rev = 0;
  bool own = false;
  for (const auto& e : b.events) {
    const int64_t rev = e.kv.mod_revision;
    if (rev != last_rev) {
      last_rev = rev;
      std::lock_guard g(own_mu_);
      own_revs_.erase(own_revs_.begin(), own_revs_.lower_bound(rev));
      own = own_revs_.count(rev) > 0;
    }
    if (e.kv.key == head) {
      SeeRevision(static_cast<Csn>(rev));
    } else if (!own && e.kv.key.size() >= rows.size() + 2 && e.kv.key.compare(0, rows.size(), rows) == 0) {
      const auto t = static_cast<uint8_t>(e.kv.key[rows.size()]);
      if (t < kNumTables) {
        changed.push_back(KeyRef{static_cast<Table>(t), e.kv.key.substr(rows.size() + 2)});
      }
    }
  }
  if (changed.empty()) return;
  std::lock_guard g(listener_mu_);
  if (listener_) listener_(changed);
}

void ClusterStore::SetRemoteChangeListener(RemoteChangeListener fn) {
  std::lock_guard g(listener_mu_);
  listener_ = std::move(fn);
}

void ClusterStore::RememberOwn(int64_t rev) {
  std::lock_guard g(own_mu_);
  // Bounded even if the watch stalls: an own change reported is harmless.
  if (own_revs_.size() > 100000) own_revs_.clear();
  own_revs_.insert(rev);
}

void ClusterStore::SeeRevision(Csn csn) {
  Csn cur = visible_.load(std::memory_order_acquire);
  while (csn > cur && !visible_.compare_exchange_weak(cur, csn, std::memory_order_acq_rel)) {
  }
}

// ---- snapshots ----

Csn ClusterStore::RegisterSnapshot() {
  std::lock_guard g(snap_mu_);
  const Csn c = visible_csn();
  ++active_snaps_[c];
  return c;
}

Status ClusterStore::RegisterSnapshotAt(Csn csn) {
  Retention r = retention();
  std::lock_guard g(snap_mu_);
  const Csn visible = visible_csn();
  if (csn > visible) return Status::NotFound("csn " + std::to_string(csn) + " is in the future");
  if (!r.Keeps(csn, visible)) {
    return Status::NotFound("the state at csn " + std::to_string(csn) +
                            " is no longer kept (history starts at csn " +
                            std::to_string(r.horizon) + ")");
  }
  ++active_snaps_[csn];
  return Status::Ok();
}

void ClusterStore::ReleaseSnapshot(Csn csn) {
  std::lock_guard g(snap_mu_);
  auto it = active_snaps_.find(csn);
  if (it != active_snaps_.end() && --it->second == 0) active_snaps_.erase(it);
}

Csn ClusterStore::MinActiveSnapshot() {
  std::lock_guard g(snap_mu_);
  return active_snaps_.empty() ? kMaxCsn : active_snaps_.begin()->first;
}

// ---- reads ----

Result<std::optional<std::string>> ClusterStore::GetRaw(const std::string& key, int64_t rev) {
  RangeOptions o;
  if (rev > 0) {
    o.revision = rev;
    o.serializable = true;
  }
  ++ranges_;
  DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(key, o));
  if (r.kvs.empty()) return std::optional<std::string>();
  auto v = Untag(r.kvs[0].value);
  if (!v) return std::optional<std::string>();
  return std::optional<std::string>(std::string(*v));
}

Result<KeyValue> ClusterStore::Latest(const std::string& key) {
  ++ranges_;
  DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(key));
  if (r.kvs.empty()) {
    KeyValue none;
    none.key = key;
    return none;
  }
  return r.kvs[0];
}

Result<std::optional<std::string>> ClusterStore::Get(Csn snap, Table t, std::string_view key) {
  return GetRaw(TableKey(t, key), snap == kMaxCsn ? 0 : static_cast<int64_t>(snap));
}

Status ClusterStore::Scan(
    Csn snap, Table t, std::string_view begin, std::string_view end,
    const std::function<bool(std::string_view key, std::string_view value)>& fn) {
  const std::string table_prefix = TableKey(t, "");
  std::string from = TableKey(t, begin);
  const std::string to = end.empty() ? PrefixEnd(table_prefix) : TableKey(t, end);
  RangeOptions o;
  o.range_end = to;
  o.limit = kScanPage;
  if (snap != kMaxCsn) {
    o.revision = static_cast<int64_t>(snap);
    o.serializable = true;
  }
  for (;;) {
    ++ranges_;
    DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(from, o));
    // Later pages at the same revision: the listing is one consistent state.
    if (o.revision == 0) {
      o.revision = r.revision;
      o.serializable = true;
    }
    for (const KeyValue& kv : r.kvs) {
      auto v = Untag(kv.value);
      if (!v) continue;
      if (!fn(std::string_view(kv.key).substr(table_prefix.size()), *v)) return Status::Ok();
    }
    if (!r.more || r.kvs.empty()) return Status::Ok();
    from = r.kvs.back().key;
    from.push_back('\0');
  }
}

Result<Csn> ClusterStore::NewestCsn(Table t, std::string_view key) {
  DBFS_ASSIGN_OR_RETURN(KeyValue kv, Latest(TableKey(t, key)));
  return static_cast<Csn>(kv.mod_revision);
}

// ---- commits ----

struct ClusterStore::Attempt {
  // etcd keys whose change since the snapshot was found benign, with the
  // mod_revision seen: compared for equality instead.
  std::map<std::string, int64_t> accepted;
};

namespace {

// Compares for [begin, end) unchanged since `snap`, except the accepted keys
// in it (compared for their observed revision).
void RangeCompares(const std::string& begin, const std::string& end, int64_t snap,
                   const std::map<std::string, int64_t>& accepted, std::vector<Compare>* out) {
  std::string from = begin;
  for (auto it = accepted.lower_bound(begin); it != accepted.end() && it->first < end; ++it) {
    if (from < it->first) {
      Compare c = Compare::ModRevision(from, Compare::Op::kLess, snap + 1);
      c.range_end = it->first;
      out->push_back(std::move(c));
    }
    out->push_back(Compare::ModRevision(it->first, Compare::Op::kEqual, it->second));
    from = it->first;
    from.push_back('\0');
  }
  if (from < end) {
    Compare c = Compare::ModRevision(from, Compare::Op::kLess, snap + 1);
    c.range_end = end;
    out->push_back(std::move(c));
  }
}

}  // namespace

Status ClusterStore::Diagnose(Attempt& a, const CommitRequest& req, Conflict* conflict) {
  if (!req.validation) return Status::Ok();
  const ValidationSet& v = *req.validation;
  const int64_t snap = static_cast<int64_t>(v.snapshot);
  auto changed = [&](Table t, const std::string& ekey, int64_t mod) -> Result<bool> {
    if (mod <= snap) return false;
    auto acc = a.accepted.find(ekey);
    if (acc != a.accepted.end() && acc->second == mod) return false;
    if (v.benign) {
      DBFS_ASSIGN_OR_RETURN(auto before, GetRaw(ekey, snap));
      DBFS_ASSIGN_OR_RETURN(auto after_kv, Latest(ekey));
      auto after = Untag(after_kv.value);
      if (before && after && after_kv.mod_revision == mod && v.benign(t, *before, *after)) {
        a.accepted[ekey] = mod;
        return false;
      }
    }
    // A caller that runs again takes a snapshot that includes the change.
    SeeRevision(static_cast<Csn>(mod));
    return true;
  };
  auto refuse = [&](Conflict::Kind kind, Table t, std::string_view key, const char* what) {
    if (conflict) *conflict = Conflict{kind, KeyRef{t, std::string(key)}};
    return Status::Conflict(what);
  };
  for (const KeyRef& k : v.write_keys) {
    const std::string ek = TableKey(k.table, k.key);
    DBFS_ASSIGN_OR_RETURN(KeyValue kv, Latest(ek));
    DBFS_ASSIGN_OR_RETURN(bool c, changed(k.table, ek, kv.mod_revision));
    if (c) return refuse(Conflict::Kind::kWrite, k.table, k.key, "write-write conflict");
  }
  for (const RangeRef& r : v.read_ranges) {
    const std::string prefix = TableKey(r.table, "");
    RangeOptions o;
    o.range_end = r.end.empty() ? PrefixEnd(prefix) : TableKey(r.table, r.end);
    o.keys_only = true;
    ++ranges_;
    DBFS_ASSIGN_OR_RETURN(RangeResult rr, etcd_->Range(TableKey(r.table, r.begin), o));
    for (const KeyValue& kv : rr.kvs) {
      DBFS_ASSIGN_OR_RETURN(bool c, changed(r.table, kv.key, kv.mod_revision));
      if (c) {
        return refuse(Conflict::Kind::kPhantom, r.table,
                      std::string_view(kv.key).substr(prefix.size()),
                      "phantom: a range read by the transaction changed");
      }
    }
  }
  for (const KeyRef& k : v.read_keys) {
    const std::string ek = TableKey(k.table, k.key);
    DBFS_ASSIGN_OR_RETURN(KeyValue kv, Latest(ek));
    DBFS_ASSIGN_OR_RETURN(bool c, changed(k.table, ek, kv.mod_revision));
    if (c) return refuse(Conflict::Kind::kRead, k.table, k.key, "read-write conflict");
  }
  return Status::Ok();  // something moved and settled (a merge or benign key): try again
}

Result<std::optional<int64_t>> ClusterStore::ResolveInDoubt(const std::string& log_key) {
  ++in_doubt_;
  // Every commit txn requires its log key to be new, so putting a marker
  // there decides the outcome for good: either the commit applied (the key
  // exists) or it never will.
  const auto deadline = std::chrono::steady_clock::now() + 3 * opts_.timeout;
  Status last;
  while (std::chrono::steady_clock::now() < deadline) {
    TxnRequest t;
    t.compares.push_back(Compare::CreateRevision(log_key, Compare::Op::kEqual, 0));
    t.success.push_back(TxnOp::Put(log_key, ""));
    t.failure.push_back(TxnOp::Range(log_key));
    ++txns_;
    auto r = etcd_->Txn(t);
    if (r.ok()) {
      if (r->succeeded) return std::optional<int64_t>();
      const auto& kvs = r->responses.at(0).range.kvs;
      if (kvs.empty()) continue;
      if (kvs[0].value.empty()) return std::optional<int64_t>();  // our own marker
      return std::optional<int64_t>(kvs[0].create_revision);
    }
    last = r.status();
    if (!InDoubt(last) && last.code() != Code::kIOError) return last;
  }
  return Status::IOError("commit outcome unknown: the etcd cluster did not answer (" +
                         last.ToString() + ")");
}

Result<CommitResult> ClusterStore::Commit(CommitRequest req, Conflict* conflict) {
  if (opts_.read_only) return Status::ReadOnly("volume opened read-only");
  DBFS_RETURN_IF_ERROR(health());
  uint64_t time_ns;
  {
    std::lock_guard g(time_mu_);
    time_ns = std::max(RealtimeNs(), last_time_ns_ + 1);
    last_time_ns_ = time_ns;
  }
  std::string log_key = prefix_ + "log/";
  PutBE64(&log_key, time_ns);
  PutBE64(&log_key, mount_id_);
  PutBE64(&log_key, ++commit_seq_);

  Attempt a;
  for (int attempt = 0; attempt < kMaxCommitAttempts; ++attempt) {
    if (attempt > 0) ++retries_;
    TxnRequest t;
    std::vector<Write> writes = req.writes;
    for (Merge& m : req.merges) {
      const std::string ek = TableKey(m.table, m.key);
      DBFS_ASSIGN_OR_RETURN(KeyValue kv, Latest(ek));
      std::optional<std::string> latest;
      if (auto v = Untag(kv.value); v && kv.mod_revision != 0) latest = std::string(*v);
      auto merged = m.fn(latest);
      if (!merged.ok()) {
        if (conflict && merged.status().code() == Code::kConflict) {
          *conflict = Conflict{Conflict::Kind::kMerge, KeyRef{m.table, m.key}};
        }
        return merged.TakeStatus();
      }
      t.compares.push_back(Compare::ModRevision(ek, Compare::Op::kEqual, kv.mod_revision));
      writes.push_back(Write{m.table, m.key, std::move(*merged)});
    }
    if (req.validation) {
      const ValidationSet& v = *req.validation;
      const int64_t snap = static_cast<int64_t>(v.snapshot);
      auto point = [&](const std::string& ek) {
        auto acc = a.accepted.find(ek);
        if (acc != a.accepted.end()) {
          t.compares.push_back(Compare::ModRevision(ek, Compare::Op::kEqual, acc->second));
        } else {
          t.compares.push_back(Compare::ModRevision(ek, Compare::Op::kLess, snap + 1));
        }
      };
      for (const KeyRef& k : v.write_keys) point(TableKey(k.table, k.key));
      for (const RangeRef& r : v.read_ranges) {
        RangeCompares(TableKey(r.table, r.begin),
                      r.end.empty() ? PrefixEnd(TableKey(r.table, "")) : TableKey(r.table, r.end),
                      snap, a.accepted, &t.compares);
      }
      for (const KeyRef& k : v.read_keys) point(TableKey(k.table, k.key));
    }
    t.compares.push_back(Compare::CreateRevision(log_key, Compare::Op::kEqual, 0));
    // The last write of a key wins (etcd refuses a key twice in one txn).
    std::map<std::string, size_t> last;
    for (size_t i = 0; i < writes.size(); ++i) last[TableKey(writes[i].table, writes[i].key)] = i;
    CommitRecord rec;
    rec.time_ns = time_ns;
    rec.meta = req.meta;
    for (size_t i = 0; i < writes.size(); ++i) {
      const std::string ek = TableKey(writes[i].table, writes[i].key);
      if (last[ek] != i) continue;
      t.success.push_back(TxnOp::Put(ek, Tagged(writes[i].value)));
      rec.keys.push_back(KeyRef{writes[i].table, writes[i].key});
    }
    t.success.push_back(TxnOp::Put(prefix_ + "head", ""));
    t.success.push_back(TxnOp::Put(log_key, EncodeLogRecord(rec)));
    ++txns_;
    auto r = etcd_->Txn(t);
    if (!r.ok()) {
      if (r.status().code() == Code::kInvalid &&
          r.status().message().find("--max-") != std::string::npos) {
        return Status(Code::kTooBig, "transaction too large for one etcd txn: " +
                                         r.status().message());
      }
      if (!InDoubt(r.status())) return r.status();
      DBFS_ASSIGN_OR_RETURN(auto applied, ResolveInDoubt(log_key));
      if (!applied) {
        return Status::IOError("commit not applied: the etcd cluster failed (" +
                               r.status().message() + ")");
      }
      RememberOwn(*applied);
      SeeRevision(static_cast<Csn>(*applied));
      ++commits_;
      return CommitResult{static_cast<Csn>(*applied)};
    }
    if (r->succeeded) {
      RememberOwn(r->revision);
      SeeRevision(static_cast<Csn>(r->revision));
      ++commits_;
      return CommitResult{static_cast<Csn>(r->revision)};
    }
    DBFS_RETURN_IF_ERROR(Diagnose(a, req, conflict));
  }
  return Status::Conflict("commit kept losing races on merged or benignly changed keys");
}

// ---- data ----

Result<DataRef> ClusterStore::AppendData(std::string_view bytes) {
  if (opts_.read_only) return Status::ReadOnly("volume opened read-only");
  if (bytes.size() > std::numeric_limits<uint32_t>::max() || bytes.size() > opts_.segment_size) {
    return Status(Code::kTooBig, "data piece of " + std::to_string(bytes.size()) +
                                     " bytes is larger than a segment");
  }
  DataRef ref;
  ref.length = static_cast<uint32_t>(bytes.size());
  {
    std::lock_guard g(data_mu_);
    if (seg_ == 0 || seg_off_ + bytes.size() > opts_.segment_size) {
      DBFS_ASSIGN_OR_RETURN(uint64_t seg, Reserve(prefix_ + "ctr/seg", 1));
      if (seg > std::numeric_limits<uint32_t>::max()) {
        return Status::NoSpace("the volume ran out of data segment numbers");
      }
      seg_ = static_cast<uint32_t>(seg);
      seg_off_ = 0;
    }
    ref.segment = seg_;
    ref.offset = seg_off_;
    seg_off_ += bytes.size();
  }
  // Outside the mutex: appends of one mount go to disjoint ranges of its
  // segment and may be in flight together.
  ++rados_writes_;
  DBFS_RETURN_IF_ERROR(rados_->Write(ObjectName(ref.segment), bytes, ref.offset));
  return ref;
}

Status ClusterStore::ReadData(const DataRef& ref, uint64_t off, size_t n, char* out) {
  if (off + n > ref.length) {
    return Status::Invalid("read of " + std::to_string(n) + " bytes at " + std::to_string(off) +
                           " is past the " + std::to_string(ref.length) +
                           " bytes the data reference names");
  }
  if (n == 0) return Status::Ok();
  ++rados_reads_;
  const std::string oid = ObjectName(ref.segment);
  DBFS_ASSIGN_OR_RETURN(std::string got, rados_->Read(oid, ref.offset + off, n));
  if (got.size() != n) {
    return Status::Corruption("data object " + oid + " holds " + std::to_string(got.size()) +
                              " of the " + std::to_string(n) + " bytes at " +
                              std::to_string(ref.offset + off));
  }
  memcpy(out, got.data(), n);
  return Status::Ok();
}

// ---- inode numbers ----

uint64_t ClusterStore::AllocateIno() {
  std::lock_guard g(ino_mu_);
  while (ino_next_ == ino_end_) {
    auto first = Reserve(prefix_ + "ctr/ino", opts_.ino_batch);
    if (first.ok()) {
      ino_next_ = *first;
      ino_end_ = *first + opts_.ino_batch;
      break;
    }
    // No error path in the interface: wait for the cluster (bounded by its
    // recovery; each try is bounded by the timeout).
    spdlog::error("cluster volume {}: taking inode numbers: {}", opts_.volume.name,
                  first.status().ToString());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ino_next_++;
}

uint64_t ClusterStore::next_ino() const {
  std::lock_guard g(ino_mu_);
  if (ino_next_ != ino_end_) return ino_next_;
  // No batch in hand: the volume's counter (every number below it may be
  // in use by some mount). Read now, so it covers every inode of any state
  // this store has seen (fsck compares it with the largest one).
  ++ranges_;
  auto r = etcd_->Range(prefix_ + "ctr/ino");
  if (r.ok() && !r->kvs.empty()) {
    try {
      ino_seen_ = std::max<uint64_t>(ino_seen_, std::stoull(r->kvs[0].value));
    } catch (const std::exception&) {
    }
  }
  return std::max<uint64_t>({ino_next_, ino_seen_, 2});
}

// ---- history ----

Result<std::vector<NamedSnapshot>> ClusterStore::LoadSnapshots() {
  RangeOptions o;
  o.range_end = PrefixEnd(prefix_ + "snap/");
  ++ranges_;
  DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(prefix_ + "snap/", o));
  std::vector<NamedSnapshot> out;
  for (const KeyValue& kv : r.kvs) {
    DBFS_ASSIGN_OR_RETURN(NamedSnapshot s, DecodeSnapshotRecord(
                                               kv.key.substr(prefix_.size() + 5), kv.value));
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(), [](const NamedSnapshot& a, const NamedSnapshot& b) {
    return a.csn != b.csn ? a.csn < b.csn : a.name < b.name;
  });
  return out;
}

Result<NamedSnapshot> ClusterStore::CreateSnapshot(const std::string& name, const CommitMeta& who) {
  if (opts_.read_only) return Status::ReadOnly("volume opened read-only");
  if (name.empty() || name.size() > kSnapshotNameMax ||
      name.find_first_of(std::string_view("\0/", 2)) != std::string::npos) {
    return Status::Invalid("a snapshot name has 1 to 255 bytes, without '/' or NUL");
  }
  NamedSnapshot s;
  s.name = name;
  s.uid = who.uid;
  s.time_ns = RealtimeNs();
  // The newest commit: it includes everything this mount committed or saw.
  DBFS_ASSIGN_OR_RETURN(KeyValue head, Latest(prefix_ + "head"));
  s.csn = std::max<Csn>(visible_csn(), static_cast<Csn>(head.mod_revision));
  SeeRevision(s.csn);
  const std::string key = prefix_ + "snap/" + name;
  TxnRequest t;
  t.compares.push_back(Compare::CreateRevision(key, Compare::Op::kEqual, 0));
  t.success.push_back(TxnOp::Put(key, EncodeSnapshotRecord(s)));
  ++txns_;
  DBFS_ASSIGN_OR_RETURN(TxnResult r, etcd_->Txn(t));
  if (!r.succeeded) return Status::Exists("snapshot '" + name + "' exists");
  std::lock_guard g(snap_mu_);
  named_.push_back(s);
  std::sort(named_.begin(), named_.end(),
            [](const NamedSnapshot& a, const NamedSnapshot& b) { return a.csn < b.csn; });
  return s;
}

Status ClusterStore::DeleteSnapshot(const std::string& name) {
  if (opts_.read_only) return Status::ReadOnly("volume opened read-only");
  ++txns_;
  DBFS_ASSIGN_OR_RETURN(DeleteResult d, etcd_->DeleteRange(prefix_ + "snap/" + name));
  std::lock_guard g(snap_mu_);
  named_.erase(std::remove_if(named_.begin(), named_.end(),
                              [&](const NamedSnapshot& s) { return s.name == name; }),
               named_.end());
  if (d.deleted == 0) return Status::NotFound("no snapshot '" + name + "'");
  return Status::Ok();
}

Result<std::vector<NamedSnapshot>> ClusterStore::ListSnapshots() {
  DBFS_ASSIGN_OR_RETURN(auto list, LoadSnapshots());
  std::lock_guard g(snap_mu_);
  named_ = list;
  return list;
}

void ClusterStore::SetHistoryWindow(uint64_t window_ns) {
  window_ns_.store(window_ns);
  if (window_ns == 0 || opts_.read_only) return;
  // Starting a window: every state from now on is kept (the volume's
  // horizon, shared by all mounts, never moves back).
  std::string v;
  PutLE64(&v, visible_csn());
  TxnRequest t;
  t.compares.push_back(Compare::CreateRevision(prefix_ + "horizon", Compare::Op::kEqual, 0));
  t.success.push_back(TxnOp::Put(prefix_ + "horizon", v));
  t.failure.push_back(TxnOp::Range(prefix_ + "horizon"));
  ++txns_;
  auto r = etcd_->Txn(t);
  if (!r.ok()) {
    spdlog::warn("cluster volume {}: starting the history window: {}", opts_.volume.name,
                 r.status().ToString());
    return;
  }
  Csn h = visible_csn();
  if (!r->succeeded && !r->responses.empty() && !r->responses[0].range.kvs.empty() &&
      r->responses[0].range.kvs[0].value.size() == 8) {
    h = DecodeLE64(r->responses[0].range.kvs[0].value.data());
  }
  {
    std::lock_guard g(snap_mu_);
    horizon_ = h;
  }
  Status st = PublishSession(std::min(MinActiveSnapshot(), visible_csn()));
  if (!st.ok()) spdlog::warn("cluster volume {}: publishing the window: {}", opts_.volume.name, st.ToString());
}

Retention ClusterStore::retention() {
  Retention r;
  r.window_ns = window_ns_.load();
  std::lock_guard g(snap_mu_);
  r.horizon = horizon_ != 0 ? horizon_ : visible_csn();
  r.snapshots = named_;
  r.log_from = r.horizon;
  if (!named_.empty()) r.log_from = std::min(r.log_from, named_.front().csn);
  return r;
}

Status ClusterStore::ScanLog(const std::function<void(const KeyValue&)>& fn,
                             uint64_t up_to_time_ns, bool keys_only) {
  const std::string lp = prefix_ + "log/";
  RangeOptions o;
  if (up_to_time_ns == std::numeric_limits<uint64_t>::max()) {
    o.range_end = PrefixEnd(lp);
  } else {
    o.range_end = lp;
    PutBE64(&o.range_end, up_to_time_ns + 1);
  }
  o.keys_only = keys_only;
  o.limit = kScanPage * 4;
  std::string from = lp;
  for (;;) {
    ++ranges_;
    DBFS_ASSIGN_OR_RETURN(RangeResult r, etcd_->Range(from, o));
    if (o.revision == 0) o.revision = r.revision;
    for (const KeyValue& kv : r.kvs) fn(kv);
    if (!r.more || r.kvs.empty()) return Status::Ok();
    from = r.kvs.back().key;
    from.push_back('\0');
  }
}

Result<Csn> ClusterStore::CsnAt(uint64_t time_ns) {
  const Csn visible = visible_csn();
  const std::string lp = prefix_ + "log/";
  // Any commit after that time? If not, the state at that time is the newest.
  RangeOptions later;
  later.range_end = PrefixEnd(lp);
  later.count_only = true;
  std::string from = lp;
  PutBE64(&from, time_ns == std::numeric_limits<uint64_t>::max() ? time_ns : time_ns + 1);
  ++ranges_;
  DBFS_ASSIGN_OR_RETURN(RangeResult lr, etcd_->Range(from, later));
  Csn csn = visible;
  if (lr.count > 0) {
    int64_t best = 0;
    DBFS_RETURN_IF_ERROR(ScanLog([&](const KeyValue& kv) { best = std::max(best, kv.create_revision); },
                                 time_ns, /*keys_only=*/true));
    if (best == 0) return Status::NotFound("no retained state is that old");
    csn = static_cast<Csn>(best);
  }
  if (!retention().Keeps(csn, std::max(visible, csn))) {
    return Status::NotFound("the state at that time (csn " + std::to_string(csn) +
                            ") is no longer kept");
  }
  return csn;
}

Status ClusterStore::ScanCommits(Csn from, Csn to, bool newest_first,
                                 const std::function<bool(const CommitRecord&)>& fn) {
  std::vector<CommitRecord> recs;
  Status bad;
  DBFS_RETURN_IF_ERROR(ScanLog(
      [&](const KeyValue& kv) {
        const Csn csn = static_cast<Csn>(kv.create_revision);
        if (kv.value.empty() || csn <= from || csn > to) return;  // an aborted commit's marker
        auto rec = DecodeLogRecord(LogKey(csn), kv.value);
        if (!rec.ok()) {
          bad = rec.status();
          return;
        }
        recs.push_back(std::move(*rec));
      },
      std::numeric_limits<uint64_t>::max(), /*keys_only=*/false));
  DBFS_RETURN_IF_ERROR(bad);
  std::sort(recs.begin(), recs.end(),
            [](const CommitRecord& a, const CommitRecord& b) { return a.csn < b.csn; });
  // Times never decrease with the CSN (mounts' clocks may differ slightly).
  for (size_t i = 1; i < recs.size(); ++i) recs[i].time_ns = std::max(recs[i].time_ns, recs[i - 1].time_ns);
  if (newest_first) std::reverse(recs.begin(), recs.end());
  for (const CommitRecord& r : recs) {
    if (!fn(r)) break;
  }
  return Status::Ok();
}

// ---- maintenance ----

void ClusterStore::MaintenanceLoop() {
  std::unique_lock l(bg_mu_);
  while (!stop_) {
    bg_cv_.wait_for(l, opts_.maintenance_interval, [&] { return stop_; });
    if (stop_) break;
    l.unlock();
    Status st = MaintainOnce();
    if (!st.ok()) spdlog::warn("cluster volume {}: maintenance: {}", opts_.volume.name, st.ToString());
    l.lock();
  }
}

Status ClusterStore::Flush() {
  return MaintainOnce();
}

Status ClusterStore::MaintainOnce() {
  if (lease_lost_.exchange(false)) {
    if (keeper_) keeper_->Stop();
    DBFS_ASSIGN_OR_RETURN(LeaseGrant g, etcd_->GrantLease(opts_.lease_ttl_s));
    lease_ = g.id;
    keeper_ = etcd_->KeepAlive(lease_, g.ttl_seconds, [this](const Status&) { lease_lost_ = true; });
  }
  // The newest commit, also when the watch missed it.
  DBFS_ASSIGN_OR_RETURN(KeyValue head, Latest(prefix_ + "head"));
  SeeRevision(static_cast<Csn>(head.mod_revision));
  const Csn visible = visible_csn();
  const Csn own_oldest = std::min(MinActiveSnapshot(), visible);
  DBFS_RETURN_IF_ERROR(PublishSession(own_oldest));
  // A read-only store only keeps its session: no history or GC work.
  if (opts_.read_only) return Status::Ok();

  // Every mount's oldest snapshot and window.
  RangeOptions mo;
  mo.range_end = PrefixEnd(prefix_ + "mounts/");
  ++ranges_;
  DBFS_ASSIGN_OR_RETURN(RangeResult mounts, etcd_->Range(prefix_ + "mounts/", mo));
  Csn oldest = own_oldest;
  bool starting = false;
  uint64_t window = window_ns_.load();
  for (const KeyValue& kv : mounts.kvs) {
    if (kv.value.size() != 16) continue;
    const Csn o = DecodeLE64(kv.value.data());
    if (o == 0) starting = true;
    oldest = std::min(oldest, o);
    window = std::max<uint64_t>(window, DecodeLE64(kv.value.data() + 8));
  }
  DBFS_ASSIGN_OR_RETURN(auto snaps, LoadSnapshots());

  // The history horizon (shared): moves forward with the widest window.
  DBFS_ASSIGN_OR_RETURN(KeyValue hz, Latest(prefix_ + "horizon"));
  Csn horizon = 0;
  if (window > 0) {
    Csn stored = hz.value.size() == 8 ? DecodeLE64(hz.value.data()) : visible;
    const uint64_t now = RealtimeNs();
    int64_t candidate = 0;
    DBFS_RETURN_IF_ERROR(
        ScanLog([&](const KeyValue& kv) { candidate = std::max(candidate, kv.create_revision); },
                now > window ? now - window : 0, /*keys_only=*/true));
    horizon = std::max<Csn>(stored, std::min<Csn>(static_cast<Csn>(candidate), visible));
    if (horizon != stored || hz.mod_revision == 0) {
      std::string v;
      PutLE64(&v, horizon);
      TxnRequest t;
      t.compares.push_back(Compare::ModRevision(prefix_ + "horizon", Compare::Op::kEqual, hz.mod_revision));
      t.success.push_back(TxnOp::Put(prefix_ + "horizon", v));
      ++txns_;
      DBFS_RETURN_IF_ERROR(etcd_->Txn(t).status());
    }
  } else if (hz.mod_revision != 0) {
    ++txns_;
    DBFS_RETURN_IF_ERROR(etcd_->DeleteRange(prefix_ + "horizon").status());
  }
  {
    std::lock_guard g(snap_mu_);
    named_ = snaps;
    horizon_ = horizon;
  }
  // What every retained state and reader needs from here on.
  Csn cut = std::min(oldest, horizon != 0 ? horizon : visible);
  if (!snaps.empty()) cut = std::min(cut, snaps.front().csn);
  if (starting || cut == 0) return Status::Ok();

  // Trim the commit log below it (the entry at the cut gives its time).
  std::vector<std::string> old_entries;
  DBFS_RETURN_IF_ERROR(ScanLog(
      [&](const KeyValue& kv) {
        if (static_cast<Csn>(kv.create_revision) < cut) old_entries.push_back(kv.key);
      },
      std::numeric_limits<uint64_t>::max(), /*keys_only=*/true));
  // Keep the newest entry below the cut: it dates the state at the cut.
  if (!old_entries.empty()) old_entries.pop_back();
  for (size_t i = 0; i < old_entries.size(); i += kDeleteBatch) {
    TxnRequest t;
    for (size_t j = i; j < std::min(old_entries.size(), i + kDeleteBatch); ++j) {
      t.success.push_back(TxnOp::Delete(old_entries[j]));
    }
    ++txns_;
    DBFS_RETURN_IF_ERROR(etcd_->Txn(t).status());
  }
  // Version GC: etcd keeps every revision >= the compaction point.
  if (static_cast<int64_t>(cut) - compacted_ >= opts_.compact_every) {
    Status st = etcd_->Compact(static_cast<int64_t>(cut));
    if (st.ok() || st.code() == Code::kCompacted) {
      compacted_ = static_cast<int64_t>(cut);
    } else {
      return st;
    }
  }
  return Status::Ok();
}

// ---- facts ----

StoreStats ClusterStore::Stats() const {
  StoreStats s;
  s.commits = commits_.load();
  return s;
}

ClusterStats ClusterStore::cluster_stats() const {
  ClusterStats s;
  s.etcd_txns = txns_.load();
  s.etcd_ranges = ranges_.load();
  s.rados_writes = rados_writes_.load();
  s.rados_reads = rados_reads_.load();
  s.commit_retries = retries_.load();
  s.in_doubt = in_doubt_.load();
  return s;
}

Result<Space> ClusterStore::StatSpace() {
  DBFS_ASSIGN_OR_RETURN(ClusterSpace c, rados_->SpaceOfCluster());
  if (c.total_bytes == 0) {
    // A cluster without a manager reports no capacity at all (ceph df shows
    // zeros): say "plenty" rather than "full", which would refuse every
    // fallocate.
    static std::once_flag warned;
    std::call_once(warned, [&] {
      spdlog::warn("cluster volume {}: the Ceph cluster reports no capacity (no manager?); "
                   "statfs shows {} TiB free",
                   opts_.volume.name, kUnknownCapacity >> 40);
    });
    c.total_bytes = c.avail_bytes = kUnknownCapacity;
  }
  Space s;
  s.total_bytes = c.total_bytes;
  s.free_bytes = c.avail_bytes;
  s.avail_bytes = c.avail_bytes;
  return s;
}

}  // namespace dbfs::mvcc::cluster
