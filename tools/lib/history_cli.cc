#include "tools/lib/history_cli.h"

#include <fmt/format.h>
#include <time.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "fs/filesystem.h"
#include "fuse/history_control.h"
#include "tools/lib/control.h"

namespace dbfs::cli {

namespace {

int Fail(const std::string& what) {
  std::fprintf(stderr, "dbfs: %s\n", what.c_str());
  return 1;
}

std::vector<std::string> Fields(const std::string& line) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string f;
  while (std::getline(in, f, '\t')) out.push_back(fuse::UnescapeField(f));
  if (!line.empty() && line.back() == '\t') out.emplace_back();
  return out;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string l;
  while (std::getline(in, l)) {
    if (!l.empty()) out.push_back(l);
  }
  return out;
}

std::string Iso(uint64_t ns) {
  if (ns == 0) return "-";
  const time_t t = static_cast<time_t>(ns / 1000000000ull);
  struct tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char zone[16];
  strftime(zone, sizeof(zone), "%z", &tm);
  return fmt::format("{}.{:03}{}", buf, (ns / 1000000) % 1000, zone);
}

std::string Human(uint64_t b) {
  const char* units[] = {"B", "K", "M", "G", "T"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{}B", b) : fmt::format("{:.1f}{}", v, units[u]);
}

std::string Json(std::string_view s) {
  std::string out = "\"";
  for (unsigned char ch : s) {
    if (ch == '"' || ch == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(ch));
    } else if (ch < 0x20) {
      out += fmt::format("\\u{:04x}", ch);
    } else {
      out.push_back(static_cast<char>(ch));
    }
  }
  return out + "\"";
}

const char* KindWord(char k) {
  switch (k) {
    case '+': return "created";
    case '-': return "removed";
    case 'M': return "modified";
    case 'A': return "attributes";
    case 'R': return "renamed";
  }
  return "changed";
}

// One change line of the reply, as `zfs diff` prints it ("M" for content
// and attribute changes alike, "R old -> new").
void PrintChange(const std::vector<std::string>& f, bool stat, bool log_style) {
  if (f.size() < 7) return;
  const char k = f[0].empty() ? '?' : f[0][0];
  const std::string path = f[1] + (f[3] == "1" && f[1] != "/" ? "/" : "");
  std::string line = log_style ? fmt::format("    {:<10} {}", KindWord(k), f[1])
                               : fmt::format("{}\t{}", k == 'A' ? 'M' : k, path);
  if (k == 'R') line += " -> " + f[2];
  if (stat) {
    line += fmt::format("\t{} -> {} bytes, {} written", f[4], f[5], f[6]);
  }
  std::printf("%s\n", line.c_str());
}

std::string ChangeJson(const std::vector<std::string>& f) {
  return fmt::format(
      "{{\"kind\":{},\"path\":{}{},\"dir\":{},\"size_before\":{},\"size_after\":{},"
      "\"bytes_written\":{}}}",
      Json(KindWord(f[0].empty() ? '?' : f[0][0])), Json(f[1]),
      f[2].empty() ? "" : ",\"new_path\":" + Json(f[2]), f[3] == "1" ? "true" : "false", f[4],
      f[5], f[6]);
}

int UndoResult(const Result<std::string>& r, const char* what) {
  if (!r.ok()) return Fail(std::string(what) + " failed: " + r.status().ToString());
  if (r->rfind("ok", 0) == 0) {
    std::printf("%s committed at csn %s\n", what, r->size() > 3 ? r->c_str() + 3 : "?");
    return 0;
  }
  if (r->rfind("kept ", 0) == 0) {
    std::printf("%s\n", r->c_str() + 5);  // the id, for dbfs tx diff/commit/abort
    return 0;
  }
  if (r->rfind("conflict ", 0) == 0) {
    std::fprintf(stderr, "dbfs: %s rolled back: conflict: %s\n", what, r->c_str() + 9);
    return kExitConflict;
  }
  return Fail(std::string("unexpected reply: ") + *r);
}

}  // namespace

std::string MountRelative(const std::string& mount, const std::string& path) {
  if (path.empty()) return "/";
  std::string abs = path;
  if (path[0] != '/') {
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) return "";
    abs = std::string(cwd) + "/" + path;
  }
  // Lexical normalization: the path may not exist (any more).
  std::vector<std::string> parts;
  std::istringstream in(abs);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.push_back(part);
  }
  std::string norm;
  for (const auto& p : parts) norm += "/" + p;
  if (norm.empty()) norm = "/";
  const std::string m = mount == "/" ? "" : mount;
  if (norm == mount) return "/";
  if (norm.rfind(m + "/", 0) != 0) {
    std::fprintf(stderr, "dbfs: %s is not inside the mount %s\n", path.c_str(), mount.c_str());
    return "";
  }
  return norm.substr(m.size());
}

std::string PointArg(const std::string& point) {
  uint64_t ns = 0;
  if (ParsePointTime(point, &ns)) {
    return fmt::format("@{}.{:09}", ns / 1000000000ull, ns % 1000000000ull);
  }
  return fuse::EscapeField(point);
}

int SnapshotCreate(const std::string& mount, const std::string& name) {
  auto r = ControlRequest(mount, "dbfs.snapshot.create:" + fuse::EscapeField(name));
  if (!r.ok()) return Fail("cannot create snapshot '" + name + "': " + r.status().ToString());
  auto f = Fields(Lines(*r).at(0));
  std::printf("snapshot %s at csn %s\n", name.c_str(), f.size() > 1 ? f[1].c_str() : "?");
  return 0;
}

int SnapshotDelete(const std::string& mount, const std::string& name) {
  auto r = ControlRequest(mount, "dbfs.snapshot.delete:" + fuse::EscapeField(name));
  if (!r.ok()) return Fail("cannot delete snapshot '" + name + "': " + r.status().ToString());
  return 0;
}

int SnapshotList(const std::string& mount, bool json) {
  auto r = ControlRequest(mount, "dbfs.snapshot.list:space");
  if (!r.ok()) return Fail(r.status().ToString());
  if (json) std::printf("[");
  bool first = true;
  if (!json) std::printf("%-24s %10s  %-29s %9s %9s\n", "NAME", "CSN", "CREATED", "USED", "REFER");
  for (const auto& l : Lines(*r)) {
    auto f = Fields(l);
    if (f.size() < 6) continue;
    if (json) {
      std::printf("%s{\"name\":%s,\"csn\":%s,\"time_ns\":%s,\"uid\":%s,\"used\":%s,\"refer\":%s}",
                  first ? "" : ",", Json(f[0]).c_str(), f[1].c_str(), f[2].c_str(), f[3].c_str(),
                  f[4].c_str(), f[5].c_str());
    } else {
      std::printf("%-24s %10s  %-29s %9s %9s\n", f[0].c_str(), f[1].c_str(),
                  Iso(std::stoull(f[2])).c_str(), Human(std::stoull(f[4])).c_str(),
                  Human(std::stoull(f[5])).c_str());
    }
    first = false;
  }
  if (json) std::printf("]\n");
  return 0;
}

int Log(const std::string& mount, const LogArgs& a) {
  uint64_t since = 0;
  if (!a.since.empty() && !ParsePointTime(a.since, &since)) {
    return Fail("--since: '" + a.since + "' is not a time (ISO-8601 or @SECONDS)");
  }
  std::string cmd = fmt::format("dbfs.log:{}:{}:{}", since, a.limit, a.all ? 1 : 0);
  if (!a.path.empty()) {
    const std::string rel = MountRelative(mount, a.path);
    if (rel.empty()) return 1;
    cmd += ":" + fuse::EscapeField(rel);
  }
  auto r = ControlRequest(mount, cmd);
  if (!r.ok()) return Fail(r.status().ToString());
  if (a.json) std::printf("[");
  bool first_commit = true, first_change = true;
  for (const auto& l : Lines(*r)) {
    auto f = Fields(l);
    if (f.size() >= 9 && f[0] == "C") {
      if (a.json) {
        std::printf(
            "%s{\"csn\":%s,\"time_ns\":%s,\"time\":%s,\"uid\":%s,\"pid\":%s,\"comm\":%s,"
            "\"tx\":%s,\"tx_cmd\":%s,\"flags\":%s,\"changes\":[",
            first_commit ? "" : "]},", f[1].c_str(), f[2].c_str(), Json(Iso(std::stoull(f[2]))).c_str(),
            f[3].c_str(), f[4].c_str(), Json(f[7]).c_str(), f[5].c_str(), Json(f[8]).c_str(),
            f[6].c_str());
        first_change = true;
      } else {
        std::string who = f[5] != "0" ? fmt::format("tx {} ({})", f[5], f[8])
                                      : fmt::format("pid {} ({})", f[4], f[7]);
        std::printf("csn %s  %s  uid %s  %s\n", f[1].c_str(), Iso(std::stoull(f[2])).c_str(),
                    f[3].c_str(), who.c_str());
      }
      first_commit = false;
    } else if (f.size() >= 7) {
      if (a.json) {
        std::printf("%s%s", first_change ? "" : ",", ChangeJson(f).c_str());
        first_change = false;
      } else {
        PrintChange(f, false, true);
      }
    }
  }
  if (a.json) std::printf("%s]\n", first_commit ? "" : "]}");
  return 0;
}

int Diff(const std::string& mount, const std::string& from, const std::string& to,
         const std::string& path, bool stat, bool json) {
  std::string cmd = "dbfs.diff:" + PointArg(from) + ":" + PointArg(to.empty() ? "now" : to);
  if (!path.empty()) {
    const std::string rel = MountRelative(mount, path);
    if (rel.empty()) return 1;
    cmd += ":" + fuse::EscapeField(rel);
  }
  auto r = ControlRequest(mount, cmd);
  if (!r.ok()) return Fail("diff: " + r.status().ToString());
  bool first = true;
  if (json) std::printf("[");
  for (const auto& l : Lines(*r)) {
    if (l[0] == '#') continue;
    auto f = Fields(l);
    if (json) {
      std::printf("%s%s", first ? "" : ",", ChangeJson(f).c_str());
    } else {
      PrintChange(f, stat, false);
    }
    first = false;
  }
  if (json) std::printf("]\n");
  return 0;
}

int TxDiff(const std::string& mount, const std::string& id, const std::string& path, bool stat) {
  std::string cmd = "dbfs.tx.diff:" + id;
  if (!path.empty()) {
    const std::string rel = MountRelative(mount, path);
    if (rel.empty()) return 1;
    cmd += ":" + fuse::EscapeField(rel);
  }
  auto r = ControlRequest(mount, cmd);
  if (!r.ok()) return Fail("tx diff: " + r.status().ToString());
  for (const auto& l : Lines(*r)) PrintChange(Fields(l), stat, false);
  return 0;
}

int Restore(const std::string& mount, const std::string& path, const std::string& at, bool keep) {
  const std::string rel = MountRelative(mount, path);
  if (rel.empty()) return 1;
  return UndoResult(ControlRequest(mount, "dbfs.restore:" + PointArg(at) + ":" +
                                              (keep ? "1" : "0") + ":" + fuse::EscapeField(rel)),
                    "restore");
}

int Rollback(const std::string& mount, const std::string& snapshot, bool keep) {
  return UndoResult(ControlRequest(mount, "dbfs.rollback:" + fuse::EscapeField(snapshot) + ":" +
                                              (keep ? "1" : "0")),
                    "rollback");
}

int Revert(const std::string& mount, const std::string& csn, bool keep) {
  return UndoResult(ControlRequest(mount, "dbfs.revert:" + csn + ":" + (keep ? "1" : "0")),
                    "revert");
}

int KeepTx(const std::string& mount, const std::string& id) {
  auto r = ControlRequest(mount, "dbfs.tx.keep:" + id);
  if (!r.ok()) return Fail("cannot keep transaction " + id + ": " + r.status().ToString());
  std::printf("%s\n", id.c_str());
  return 0;
}

}  // namespace dbfs::cli
