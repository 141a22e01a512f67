#include "fuse/control.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include <random>

#include "fs/checkpoint.h"
#include "fs/stats.h"
#include "fuse/history_control.h"
#include "fuse/metrics_export.h"

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
  if (name.starts_with(kMorePrefix)) return More(c, name.substr(kMorePrefix.size()));
  for (std::string_view p : kHistoryPrefixes) {
    if (name.starts_with(p)) {
      DBFS_ASSIGN_OR_RETURN(std::string reply, HandleHistory(fs_, bindings_, c, name));
      return Page(c, std::move(reply));
    }
  }
  if (name == kStatsXattr) return Stats();
  if (name == kStatsPrometheusXattr) return Page(c, Prometheus());
  if (name == kStatsJsonXattr) {
    return Page(c, MetricsJson(ParseStatsText(Stats()), fs_->ListTx().size()));
  }
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

// A reply longer than one getxattr value (64 KiB) is sent in pages: each but
// the last starts with kMoreMarker, the token and a newline; the client asks
// for the next with dbfs.more:TOKEN. Unfetched pages expire after a minute.
Result<std::string> ControlChannel::Page(const Caller& c, std::string reply) {
  if (reply.size() <= kMaxPage) return reply;
  std::lock_guard g(pages_mu_);
  const auto now = std::chrono::steady_clock::now();
  for (auto it = pages_.begin(); it != pages_.end();) {
    it = now - it->second.created > std::chrono::minutes(1) ? pages_.erase(it) : std::next(it);
  }
  static std::mt19937_64 rng{std::random_device{}()};
  const std::string token = fmt::format("{:016x}", rng());
  std::string first = reply.substr(0, kMaxPage);
  pages_[token] = Pending{c.uid, std::move(reply), kMaxPage, now};
  return std::string(1, kMoreMarker) + token + "\n" + first;
}

Result<std::string> ControlChannel::More(const Caller& c, std::string_view token) {
  std::lock_guard g(pages_mu_);
  auto it = pages_.find(std::string(token));
  if (it == pages_.end() || it->second.uid != c.uid) {
    return Status::NotFound("no pending reply " + std::string(token));
  }
  Pending& p = it->second;
  std::string chunk = p.text.substr(p.sent, kMaxPage);
  p.sent += chunk.size();
  if (p.sent >= p.text.size()) {
    pages_.erase(it);
    return chunk;
  }
  return std::string(1, kMoreMarker) + std::string(token) + "\n" + chunk;
}

std::string ControlChannel::Stats() {
  std::string out;
  auto line = [&](std::string_view k, uint64_t v) { out += fmt::format("{} {}\n", k, v); };
  ForEachCounter(fs_->Stats(), line);
  line("tx_aborts_root_gone", bindings_->root_gone_aborts());
  if (extra_) extra_(&out);
  return out;
}

std::string ControlChannel::Prometheus() {
  return PrometheusText(ParseStatsText(Stats()), fs_->ListTx().size());
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
    } else if (a[i].starts_with("cmd=")) {
      o.cmd = UnescapeField(a[i].substr(4));
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
  if (o.cmd.empty()) o.cmd = ReadCmdline(o.root_pid);
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
