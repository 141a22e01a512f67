#include "fuse/history_control.h"

#include <fmt/format.h>

#include <vector>

namespace dbfs::fuse {

namespace {

std::vector<std::string> Split(std::string_view rest, size_t max_parts) {
  std::vector<std::string> out;
  while (!rest.empty() || out.empty()) {
    const size_t p = out.size() + 1 == max_parts ? std::string_view::npos : rest.find(':');
    out.emplace_back(rest.substr(0, p));
    if (p == std::string_view::npos) break;
    rest = rest.substr(p + 1);
    if (rest.empty()) out.emplace_back();
  }
  return out;
}

bool Number(const std::string& s, uint64_t* v) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *v = std::stoull(s);
  return true;
}

char KindChar(Change::Kind k) {
  switch (k) {
    case Change::Kind::kAdded: return '+';
    case Change::Kind::kRemoved: return '-';
    case Change::Kind::kModified: return 'M';
    case Change::Kind::kAttributes: return 'A';
    case Change::Kind::kRenamed: return 'R';
  }
  return '?';
}

void AppendChanges(const std::vector<Change>& changes, std::string* out) {
  for (const Change& c : changes) {
    *out += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\t{}\n", KindChar(c.kind), EscapeField(c.path),
                        EscapeField(c.new_path), c.dir ? 1 : 0, c.size_before, c.size_after,
                        c.bytes_written);
  }
}

std::string UndoReply(const TxOutcome& o) {
  if (o.tx != 0) return "kept " + std::to_string(o.tx);
  switch (o.kind) {
    case TxOutcome::Kind::kCommitted: return "ok " + std::to_string(o.csn);
    case TxOutcome::Kind::kConflict: return "conflict " + o.detail;
    case TxOutcome::Kind::kDeadlock: return "conflict " + o.detail;
    case TxOutcome::Kind::kAborted: return "conflict aborted";
  }
  return "ok";
}

}  // namespace

std::string EscapeField(std::string_view s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch < 0x20 || ch == 0x7f || ch == ':') {
      out += fmt::format("\\x{:02x}", ch);
    } else {
      out.push_back(static_cast<char>(ch));
    }
  }
  return out;
}

std::string UnescapeField(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == '\\') {
      out.push_back('\\');
      ++i;
    } else if (s[i] == '\\' && i + 3 < s.size() && s[i + 1] == 'x') {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 2, 2)), nullptr, 16)));
      i += 3;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

Result<std::string> HandleHistory(Filesystem* fs, TxBindings* bindings, const Caller& c,
                                  std::string_view name) {
  auto after = [&](std::string_view prefix) { return name.substr(prefix.size()); };
  if (name.starts_with("dbfs.snapshot.create:")) {
    DBFS_ASSIGN_OR_RETURN(SnapshotInfo s,
                          fs->CreateSnapshot(c, UnescapeField(after("dbfs.snapshot.create:"))));
    return fmt::format("{}\t{}\t{}\n", EscapeField(s.name), s.csn, s.time_ns);
  }
  if (name.starts_with("dbfs.snapshot.delete:")) {
    DBFS_RETURN_IF_ERROR(fs->DeleteSnapshot(c, UnescapeField(after("dbfs.snapshot.delete:"))));
    return std::string("ok");
  }
  if (name == "dbfs.snapshot.list" || name == "dbfs.snapshot.list:space") {
    DBFS_ASSIGN_OR_RETURN(auto snaps, fs->ListSnapshots(name.ends_with(":space")));
    std::string out;
    for (const auto& s : snaps) {
      out += fmt::format("{}\t{}\t{}\t{}\t{}\t{}\n", EscapeField(s.name), s.csn, s.time_ns, s.uid,
                         s.used_bytes, s.refer_bytes);
    }
    return out;
  }
  if (name.starts_with("dbfs.diff:")) {
    auto a = Split(after("dbfs.diff:"), 3);
    if (a.size() < 2) return Status::Invalid("usage: dbfs.diff:FROM:TO[:PATH]");
    DBFS_ASSIGN_OR_RETURN(uint64_t from, fs->ResolvePoint(UnescapeField(a[0])));
    DBFS_ASSIGN_OR_RETURN(uint64_t to, fs->ResolvePoint(UnescapeField(a[1])));
    DBFS_ASSIGN_OR_RETURN(auto changes,
                          fs->Diff(c, from, to, a.size() > 2 ? UnescapeField(a[2]) : ""));
    std::string out = fmt::format("#\t{}\t{}\n", from, to);
    AppendChanges(changes, &out);
    return out;
  }
  if (name.starts_with("dbfs.tx.diff:")) {
    auto a = Split(after("dbfs.tx.diff:"), 2);
    uint64_t id = 0;
    if (!Number(a[0], &id)) return Status::Invalid("usage: dbfs.tx.diff:ID[:PATH]");
    DBFS_ASSIGN_OR_RETURN(auto changes, fs->TxDiff(c, id, a.size() > 1 ? UnescapeField(a[1]) : ""));
    std::string out;
    AppendChanges(changes, &out);
    return out;
  }
  if (name.starts_with("dbfs.log:")) {
    auto a = Split(after("dbfs.log:"), 4);
    LogQuery q;
    uint64_t limit = 0, all = 0;
    if (a.size() < 3 || !Number(a[0], &q.since_ns) || !Number(a[1], &limit) || !Number(a[2], &all)) {
      return Status::Invalid("usage: dbfs.log:SINCE_NS:LIMIT:ALL[:PATH]");
    }
    q.limit = limit;
    q.all = all != 0;
    if (a.size() > 3) q.path = UnescapeField(a[3]);
    DBFS_ASSIGN_OR_RETURN(auto entries, fs->Log(c, q));
    std::string out;
    for (const LogEntry& e : entries) {
      out += fmt::format("C\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n", e.csn, e.time_ns, e.uid, e.pid, e.tx,
                         e.flags, EscapeField(e.comm), EscapeField(e.tx_cmd));
      AppendChanges(e.changes, &out);
    }
    return out;
  }
  if (name.starts_with("dbfs.restore:")) {
    auto a = Split(after("dbfs.restore:"), 3);
    if (a.size() != 3) return Status::Invalid("usage: dbfs.restore:AT:KEEP:PATH");
    DBFS_ASSIGN_OR_RETURN(uint64_t at, fs->ResolvePoint(UnescapeField(a[0])));
    DBFS_ASSIGN_OR_RETURN(TxOutcome o, fs->Restore(c, UnescapeField(a[2]), at, a[1] == "1"));
    return UndoReply(o);
  }
  if (name.starts_with("dbfs.rollback:")) {
    auto a = Split(after("dbfs.rollback:"), 2);
    if (a.size() != 2) return Status::Invalid("usage: dbfs.rollback:NAME:KEEP");
    DBFS_ASSIGN_OR_RETURN(TxOutcome o, fs->Rollback(c, UnescapeField(a[0]), a[1] == "1"));
    return UndoReply(o);
  }
  if (name.starts_with("dbfs.revert:")) {
    auto a = Split(after("dbfs.revert:"), 2);
    uint64_t csn = 0;
    if (a.size() != 2 || !Number(a[0], &csn)) return Status::Invalid("usage: dbfs.revert:CSN:KEEP");
    DBFS_ASSIGN_OR_RETURN(TxOutcome o, fs->Revert(c, csn, a[1] == "1"));
    return UndoReply(o);
  }
  if (name.starts_with("dbfs.tx.keep:")) {
    uint64_t id = 0;
    if (!Number(std::string(after("dbfs.tx.keep:")), &id)) {
      return Status::Invalid("usage: dbfs.tx.keep:ID");
    }
    DBFS_RETURN_IF_ERROR(fs->KeepTx(c, id));
    bindings->Unbind(id);
    return std::string("ok");
  }
  return Status(Code::kNoData, "no such control attribute");
}

}  // namespace dbfs::fuse
