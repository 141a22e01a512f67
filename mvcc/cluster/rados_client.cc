#include "mvcc/cluster/rados_client.h"

#include <fmt/format.h>
#include <rados/librados.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace dbfs::mvcc::cluster {
namespace {

// librados' time options take whole seconds: round up, at least 1.
std::string Seconds(std::chrono::milliseconds t) {
  return std::to_string(std::max<int64_t>(1, (t.count() + 999) / 1000));
}

}  // namespace

struct RadosClient::Impl {
  RadosOptions options;
  // Destroyed in reverse order: the pool handle before the cluster handle.
  librados::Rados rados;
  bool rados_initialized = false;
  librados::IoCtx ioctx;

  ~Impl() {
    ioctx.close();
    if (rados_initialized) rados.shutdown();
  }

  std::string Prefix(std::string_view what, std::string_view oid) const {
    if (oid.empty()) return fmt::format("rados pool {}: {}", options.pool, what);
    return fmt::format("rados pool {}: {} {}", options.pool, what, oid);
  }

  // The one place a librados return code becomes a Status.
  Status Error(int rc, std::string_view what, std::string_view oid) const {
    const int err = -rc;
    const std::string prefix = Prefix(what, oid);
    switch (err) {
      case ETIMEDOUT:
        return Status::IOError(fmt::format(
            "{}: no answer within {} s (OSDs or monitors down, or the cluster full)", prefix,
            Seconds(options.timeout)));
      case ENOENT:
        return Status::NotFound(prefix + ": no such object");
      case ENOSPC:
      case EDQUOT:
        return Status::NoSpace(prefix + ": the pool is full");
      case EFBIG:
      case E2BIG:
      case EMSGSIZE:
        return Status(Code::kTooBig,
                      prefix + ": larger than the cluster allows (osd_max_object_size / "
                               "osd_max_write_size)",
                      err);
      case ESHUTDOWN:
      case ENOTCONN:
      case ECONNREFUSED:
      case EIO:
        return Status::IOError(prefix + ": " + std::strerror(err));
      default:
        return Status::FromErrno(err, prefix);
    }
  }
};

namespace {

struct CompletionRelease {
  void operator()(librados::AioCompletion* c) const { c->release(); }
};
using Completion = std::unique_ptr<librados::AioCompletion, CompletionRelease>;

Completion NewCompletion() { return Completion(librados::Rados::aio_create_completion()); }

// A bufferlist counts in 32 bits; anything larger would be cut silently.
// (The OSDs refuse far smaller writes anyway: osd_max_write_size, 90 MiB.)
bool TooLarge(std::string_view data) { return data.size() > UINT32_MAX; }

librados::bufferlist ToBufferlist(std::string_view data) {
  librados::bufferlist bl;
  bl.append(data.data(), static_cast<unsigned>(data.size()));
  return bl;
}

}  // namespace

Result<std::unique_ptr<RadosClient>> RadosClient::Connect(const RadosOptions& options) {
  if (options.pool.empty()) return Status::Invalid("rados: no pool given");
  if (options.timeout.count() <= 0) return Status::Invalid("rados: timeout must be positive");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::string name = options.user.empty() ? "client.admin" : options.user;
  if (name.rfind("client.", 0) != 0) name = "client." + name;
  const std::string where =
      fmt::format("rados ({} as {})", options.conf_path.empty() ? "default ceph.conf" : options.conf_path, name);

  int rc = impl->rados.init2(name.c_str(), "ceph", 0);
  if (rc < 0) return Status::FromErrno(-rc, where + ": init");
  impl->rados_initialized = true;
  rc = impl->rados.conf_read_file(options.conf_path.empty() ? nullptr : options.conf_path.c_str());
  if (rc < 0) return Status::FromErrno(-rc, where + ": reading the configuration");
  const std::string secs = Seconds(options.timeout);
  // librados waits forever by default for a dead or full cluster; these make
  // every operation (and the connect itself) end in ETIMEDOUT instead.
  for (const char* opt : {"rados_osd_op_timeout", "rados_mon_op_timeout", "client_mount_timeout"}) {
    rc = impl->rados.conf_set(opt, secs.c_str());
    if (rc < 0) return Status::FromErrno(-rc, where + ": setting " + opt);
  }
  // Our errors travel as Status; librados must not write to the daemon's
  // stderr (which is the terminal or the log of a mount).
  for (const char* opt : {"log_to_stderr", "err_to_stderr"}) {
    impl->rados.conf_set(opt, "false");  // best effort: older librados lack one of them
  }
  rc = impl->rados.connect();
  if (rc < 0) {
    if (-rc == ETIMEDOUT) {
      return Status::IOError(fmt::format("{}: no monitor answered within {} s", where, secs));
    }
    return Status::IOError(where + ": connect: " + std::strerror(-rc));
  }
  rc = impl->rados.ioctx_create(options.pool.c_str(), impl->ioctx);
  if (rc == -ENOENT) return Status::NotFound(where + ": pool '" + options.pool + "' does not exist");
  if (rc < 0) return Status::FromErrno(-rc, where + ": opening pool " + options.pool);
  return std::unique_ptr<RadosClient>(new RadosClient(std::move(impl)));
}

RadosClient::RadosClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RadosClient::~RadosClient() = default;

const std::string& RadosClient::pool() const { return impl_->options.pool; }

Status RadosClient::WriteFull(const std::string& oid, std::string_view data) const {
  if (TooLarge(data)) return impl_->Error(-EFBIG, "write_full", oid);
  librados::bufferlist bl = ToBufferlist(data);
  const int rc = impl_->ioctx.write_full(oid, bl);
  return rc < 0 ? impl_->Error(rc, "write_full", oid) : Status::Ok();
}

Status RadosClient::Write(const std::string& oid, std::string_view data, uint64_t offset) const {
  if (TooLarge(data)) return impl_->Error(-EFBIG, "write", oid);
  librados::bufferlist bl = ToBufferlist(data);
  const int rc = impl_->ioctx.write(oid, bl, data.size(), offset);
  return rc < 0 ? impl_->Error(rc, "write", oid) : Status::Ok();
}

Result<std::string> RadosClient::Read(const std::string& oid, uint64_t offset, size_t length) const {
  // librados reads to the end of the object for length 0; we mean nothing.
  if (length == 0) {
    DBFS_RETURN_IF_ERROR(Stat(oid).status());  // still NotFound for a missing object
    return std::string();
  }
  librados::bufferlist bl;
  const int rc = impl_->ioctx.read(oid, bl, length, offset);
  if (rc < 0) return impl_->Error(rc, "read", oid);
  return bl.to_str();
}

Status RadosClient::Remove(const std::string& oid) const {
  const int rc = impl_->ioctx.remove(oid);
  return rc < 0 ? impl_->Error(rc, "remove", oid) : Status::Ok();
}

Result<ObjectStat> RadosClient::Stat(const std::string& oid) const {
  ObjectStat st;
  const int rc = impl_->ioctx.stat2(oid, &st.size, &st.mtime);
  if (rc < 0) return impl_->Error(rc, "stat", oid);
  return st;
}

Result<ClusterSpace> RadosClient::SpaceOfCluster() const {
  librados::cluster_stat_t st;
  const int rc = impl_->rados.cluster_stat(st);
  if (rc < 0) return impl_->Error(rc, "cluster stat", "");
  ClusterSpace out;
  out.total_bytes = st.kb * 1024;
  out.used_bytes = st.kb_used * 1024;
  out.avail_bytes = st.kb_avail * 1024;
  return out;
}

Result<std::vector<std::string>> RadosClient::ListObjects(std::string_view prefix) const {
  std::vector<std::string> out;
  // Cursors are never assigned: librados' ObjectCursor::operator= leaks the
  // cursor it overwrites (16.2). Each page gets a fresh one instead.
  auto cursor = std::make_unique<librados::ObjectCursor>(impl_->ioctx.object_list_begin());
  const librados::ObjectCursor end = impl_->ioctx.object_list_end();
  constexpr size_t kPage = 1024;
  while (!impl_->ioctx.object_list_is_end(*cursor)) {
    std::vector<librados::ObjectItem> items;
    auto next = std::make_unique<librados::ObjectCursor>();
    const int rc = impl_->ioctx.object_list(*cursor, end, kPage, {}, &items, next.get());
    if (rc < 0) return impl_->Error(rc, "list", "");
    for (auto& item : items) {
      if (item.oid.compare(0, prefix.size(), prefix) == 0) out.push_back(std::move(item.oid));
    }
    cursor = std::move(next);
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- RadosBatch ----

struct RadosBatch::Op {
  const char* what;
  std::string oid;
  Completion completion = NewCompletion();
  librados::bufferlist bl;      // the data written, or the data read
  std::string* out = nullptr;   // Read: destination
  int submit_rc = 0;            // < 0: librados refused to start it
};

RadosBatch::RadosBatch(const RadosClient& client) : client_(client) {}

RadosBatch::~RadosBatch() {
  // Every operation must be finished before its buffers go away.
  Wait().IgnoreError();
}

void RadosBatch::Issue(std::unique_ptr<Op> op, int rc) {
  op->submit_rc = rc;
  ops_.push_back(std::move(op));
}

void RadosBatch::WriteFull(const std::string& oid, std::string_view data) {
  auto op = std::make_unique<Op>();
  op->what = "write_full";
  op->oid = oid;
  if (TooLarge(data)) return Issue(std::move(op), -EFBIG);
  op->bl = ToBufferlist(data);
  const int rc = client_.impl_->ioctx.aio_write_full(oid, op->completion.get(), op->bl);
  Issue(std::move(op), rc);
}

void RadosBatch::Write(const std::string& oid, std::string_view data, uint64_t offset) {
  auto op = std::make_unique<Op>();
  op->what = "write";
  op->oid = oid;
  if (TooLarge(data)) return Issue(std::move(op), -EFBIG);
  op->bl = ToBufferlist(data);
  const int rc =
      client_.impl_->ioctx.aio_write(oid, op->completion.get(), op->bl, data.size(), offset);
  Issue(std::move(op), rc);
}

void RadosBatch::Read(const std::string& oid, uint64_t offset, size_t length, std::string* out) {
  auto op = std::make_unique<Op>();
  op->what = "read";
  op->oid = oid;
  op->out = out;
  int rc = 0;
  if (length == 0) {
    out->clear();  // librados would read the whole object for length 0
    op->completion.reset();
  } else {
    rc = client_.impl_->ioctx.aio_read(oid, op->completion.get(), &op->bl, length, offset);
  }
  Issue(std::move(op), rc);
}

void RadosBatch::Remove(const std::string& oid) {
  auto op = std::make_unique<Op>();
  op->what = "remove";
  op->oid = oid;
  const int rc = client_.impl_->ioctx.aio_remove(oid, op->completion.get());
  Issue(std::move(op), rc);
}

Status RadosBatch::Wait() {
  Status first;
  for (auto& op : ops_) {
    int rc = op->submit_rc;
    if (rc >= 0 && op->completion) {
      // Bounded: rados_osd_op_timeout completes the op with -ETIMEDOUT.
      op->completion->wait_for_complete();
      rc = op->completion->get_return_value();
    }
    if (rc < 0) {
      if (first.ok()) first = client_.impl_->Error(rc, op->what, op->oid);
      continue;
    }
    if (op->out && op->completion) *op->out = op->bl.to_str();
  }
  ops_.clear();
  return first;
}

size_t RadosBatch::pending() const { return ops_.size(); }

}  // namespace dbfs::mvcc::cluster
