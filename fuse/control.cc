#include "fuse/control.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "fs/checkpoint.h"
#include "fs/stats.h"

namespace dbfs::fuse {

namespace {

// "a:b:c" -> {"a", "b", "c"}.
std::vector<std::string> SplitArgs(std::string_view rest) {
  std::vector<std::string> out;
  while (!rest.empty()) {
    const size_t p = rest.find(':');
    out.emplace_back(rest.substr(0, p));
    rest = p == std::string_view::npos ? std::string_view() : rest.substr(p + 1);
  }
  return out;
}

bool ParseNumber(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *v = std::stoull(s);
  return true;
}

// The reply to a commit or abort that ended a transaction.
std::string Reply(const TxOutcome& o) {
  switch (o.kind) {
    case TxOutcome::Kind::kCommitted:
      return "ok " + std::to_string(o.csn);
    case TxOutcome::Kind::kAborted:
      return "ok";
    case TxOutcome::Kind::kConflict:
      return "conflict " + o.detail;
    case TxOutcome::Kind::kDeadlock:
      return "deadlock " + o.detail;
  }
  return "ok";
}

}  // namespace

Result<std::string> ControlChannel::Handle(const Caller& c, std::string_view name) {
  if (name == kStatsXattr) return Stats();
  if (name == kTxStatusXattr) return TxStatus();
  if (name == kCheckpointXattr) {
    // Root only: it rewrites data and may take a while.
    if (c.uid != 0) return Status(Code::kPermission, "only root may checkpoint");
    DBFS_ASSIGN_OR_RETURN(CheckpointReport r, fs_->Checkpoint());
    return r.ToString();
  }
  if (name.starts_with(kTxBeginPrefix)) return Begin(c, name.substr(kTxBeginPrefix.size()));
  if (name.starts_with(kTxCommitPrefix)) return Commit(c, name.substr(kTxCommitPrefix.size()));
  if (name.starts_with(kTxAbortPrefix)) return Abort(c, name.substr(kTxAbortPrefix.size()));
  return Status(Code::kNoData, "no such control attribute");
}

std::string ControlChannel::Stats() {
  std::string out;
  auto line = [&](std::string_view k, uint64_t v) { out += fmt::format("{} {}\n", k, v); };
  ForEachCounter(fs_->Stats(), line);
  line("tx_aborts_root_gone", bindings_->root_gone_aborts());
  if (extra_) extra_(&out);
  return out;
}

std::string ControlChannel::TxStatus() {
  std::string out;
  for (const TxInfo& t : fs_->ListTx()) {
    out += fmt::format("tx {} pid {} uid {} {} {} age {:.1f}s", t.id, t.root_pid, t.uid,
                       t.serializable ? "serializable" : "snapshot", t.lock ? "lock" : "optimistic",
                       t.age_seconds);
    if (!t.busy) {
      out += fmt::format(" writes {} bytes {}", t.writes, t.data_bytes);
      if (t.lock) out += fmt::format(" locks {}", t.locks);
    } else if (t.waiting_on != 0) {
      out += fmt::format(" waiting for the lock of inode {}", t.waiting_on);
    } else {
      out += " busy";
    }
    out += "\n";
  }
  return out;
}

Result<std::string> ControlChannel::Begin(const Caller& c, std::string_view args) {
  const std::vector<std::string> a = SplitArgs(args);
  uint64_t pid = 0;
  TxOptions o;
  bool bad = a.empty() || !ParseNumber(a[0], &pid) || pid == 0 || pid > INT32_MAX;
  for (size_t i = 1; i < a.size() && !bad; ++i) {
    if (a[i] == "serializable" || a[i] == "snapshot") {
      o.serializable = a[i] == "serializable";
    } else if (a[i] == "lock") {
      o.lock = true;
    } else {
      bad = true;
    }
  }
  if (bad) return Status::Invalid("usage: dbfs.tx.begin:PID[:serializable|snapshot][:lock]");
  o.root_pid = static_cast<int32_t>(pid);
  auto root = ReadProc(o.root_pid);
  if (!root) return Status::NotFound("no process " + std::to_string(pid));
  if (c.uid != 0 && root->uid != c.uid) {
    return Status(Code::kPermission, "cannot bind a transaction to another user's process");
  }
  if (c.tx != 0) return Status::Busy("the caller is already inside a transaction");
  DBFS_ASSIGN_OR_RETURN(uint64_t id, fs_->BeginTx(c, o));
  if (Status bound = bindings_->Bind(o.root_pid, *root, id); !bound.ok()) {
    fs_->AbortTxInternally(id, "binding failed").IgnoreError();
    return bound;
  }
  return std::to_string(id);
}

Result<std::string> ControlChannel::Commit(const Caller& c, std::string_view args) {
  const std::vector<std::string> a = SplitArgs(args);
  uint64_t id = 0;
  if (a.empty() || !ParseNumber(a[0], &id) || (a.size() > 1 && a[1] != "durable") || a.size() > 2) {
    return Status::Invalid("usage: dbfs.tx.commit:ID[:durable]");
  }
  auto r = fs_->CommitTx(c, id, a.size() > 1);
  // Whatever the verdict the transaction is over (unless the caller may not
  // end it, or it does not exist).
  if (r.ok() || (r.status().code() != Code::kPermission && r.status().code() != Code::kNotFound)) {
    bindings_->Unbind(id);
  }
  if (!r.ok()) return r.TakeStatus();
  return Reply(*r);
}

Result<std::string> ControlChannel::Abort(const Caller& c, std::string_view args) {
  const std::vector<std::string> a = SplitArgs(args);
  uint64_t id = 0;
  if (a.size() != 1 || !ParseNumber(a[0], &id)) return Status::Invalid("usage: dbfs.tx.abort:ID");
  auto r = fs_->AbortTx(c, id);
  if (r.ok()) bindings_->Unbind(id);
  if (!r.ok()) return r.TakeStatus();
  return Reply(*r);
}

}  // namespace dbfs::fuse
