#include "tools/lib/mount_options.h"

#include <fmt/format.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "fs/runtime_dir.h"
#include "libdbfs/mountinfo.h"
#include "mvcc/volume.h"

namespace dbfs {

namespace {

// ---------------------------------------------------------------- options

bool IsIgnoredOption(std::string_view key) {
  // Generic mount(8) options a mount helper receives; they mean nothing here.
  static constexpr std::string_view kIgnored[] = {
      "auto", "noauto", "user", "nouser", "_netdev", "defaults", "nofail",
      // Generic ones mount(8) repeats from the live mount for a remount, and
      // the FUSE kernel options libfuse set there.
      "relatime", "strictatime", "atime", "diratime", "nodiratime", "lazytime", "nolazytime",
      "silent", "loud", "user_id", "group_id", "rootmode", "blksize", "max_read"};
  for (std::string_view k : kIgnored) {
    if (key == k) return true;
  }
  return key.starts_with("x-");  // userspace-only fstab options
}

Status ParseSeconds(std::string_view key, std::string_view value, double* out) {
  std::string v(value);
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno != 0 || !std::isfinite(d) || d < 0) {
    return Status::Invalid(
        fmt::format("mount option '{}': '{}' is not a number of seconds >= 0", key, value));
  }
  *out = d;
  return Status::Ok();
}

// A non-negative integer, with an optional binary suffix k, m, g or t when
// `suffixes`.
Status ParseUint(std::string_view key, std::string_view value, bool suffixes, uint64_t* out) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [p, ec] = std::from_chars(value.data(), end, v);
  int shift = 0;
  if (ec == std::errc() && suffixes && p + 1 == end) {
    const std::string_view units = "kmgt";
    const size_t u = units.find(static_cast<char>(*p | 0x20));
    if (u != std::string_view::npos) {
      shift = 10 * static_cast<int>(u + 1);
      ++p;
    }
  }
  if (ec != std::errc() || p != end || (shift > 0 && v > (UINT64_MAX >> shift))) {
    return Status::Invalid(fmt::format("mount option '{}': '{}' is not a valid {}", key, value,
                                       suffixes ? "size (e.g. 512m, 4g)" : "whole number"));
  }
  *out = v << shift;
  return Status::Ok();
}

// A duration: a whole number with an optional unit s, m, h, d or w (none:
// seconds), e.g. 90, 30m, 1h, 7d.
Status ParseDuration(std::string_view key, std::string_view value, uint64_t* seconds) {
  uint64_t v = 0;
  const char* end = value.data() + value.size();
  auto [p, ec] = std::from_chars(value.data(), end, v);
  uint64_t unit = 1;
  if (ec == std::errc() && p + 1 == end) {
    switch (*p) {
      case 's': unit = 1; break;
      case 'm': unit = 60; break;
      case 'h': unit = 3600; break;
      case 'd': unit = 86400; break;
      case 'w': unit = 7 * 86400; break;
      default: unit = 0; break;
    }
    if (unit != 0) ++p;
  }
  if (ec != std::errc() || p != end || unit == 0 || v > UINT64_MAX / unit / 1000000000ull) {
    return Status::Invalid(fmt::format(
        "mount option '{}': '{}' is not a duration (e.g. 0, 90, 30m, 1h, 7d)", key, value));
  }
  *seconds = v * unit;
  return Status::Ok();
}

// ---------------------------------------------------------------- checks

Status CheckDirectory(std::string_view what, std::string* path) {
  if (path->empty()) return Status::Invalid(fmt::format("no {} given", what));
  auto fail = [&](int err) {
    Status s = Status::FromErrno(err, fmt::format("{} {}", what, *path));
    if (err != ENOTCONN) return s;
    return Status(s.code(), s.message() + " (a dead DBFS mount? run fusermount3 -u " + *path + ")",
                  err);
  };
  char* real = realpath(path->c_str(), nullptr);
  if (real == nullptr) return fail(errno);
  std::string abs(real);
  free(real);
  struct stat st {};
  if (stat(abs.c_str(), &st) != 0) return fail(errno);
  if (!S_ISDIR(st.st_mode)) {
    return Status(Code::kNotDir, fmt::format("{} {}: not a directory", what, *path));
  }
  *path = abs;
  return Status::Ok();
}

}  // namespace

const std::string_view kMountOptionNames[] = {
    "ro", "rw", "remount", "sync", "noatime", "log_level=", "log=", "allow_other",
    "default_permissions", "no_default_permissions", "dev", "nodev", "suid", "nosuid", "exec",
    "noexec", "entry_timeout=", "attr_timeout=", "direct_io", "tx_timeout=", "tx_max_bytes=",
    "checkpoint_mb=", "checkpoint_interval=", "wal_segment_mb=", "runtime_dir=", "history=",
    "tx_keep_timeout=", "metrics_port=", "elle_port=", "elle_weaken", "cluster_timeout=",
    "ceph_conf=", "ceph_id=", "io_uring=", "io_uring_q_depth="};
const size_t kMountOptionCount = std::size(kMountOptionNames);

Status ParseMountOptions(std::string_view list, MountOptions* out) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    std::string_view item = list.substr(0, comma);
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string_view key = item.substr(0, eq);
    const bool has_value = eq != std::string_view::npos;
    const std::string_view value = has_value ? item.substr(eq + 1) : std::string_view();
    if (IsIgnoredOption(key)) continue;
    auto flag = [&](bool* target, bool v) {
      if (has_value) {
        return Status::Invalid(fmt::format("mount option '{}' takes no value", key));
      }
      *target = v;
      return Status::Ok();
    };
    if (key == "sync") {
      DBFS_RETURN_IF_ERROR(flag(&out->fs.sync, true));
    } else if (key == "noatime") {
      DBFS_RETURN_IF_ERROR(flag(&out->fs.noatime, true));
    } else if (key == "ro" || key == "rw") {
      DBFS_RETURN_IF_ERROR(flag(&out->fs.read_only, key == "ro"));
    } else if (key == "remount") {
      DBFS_RETURN_IF_ERROR(flag(&out->remount, true));
    } else if (key == "dev" || key == "nodev") {
      bool v = false;
      DBFS_RETURN_IF_ERROR(flag(&v, true));
      out->dev = key == "dev";
    } else if (key == "suid" || key == "nosuid") {
      bool v = false;
      DBFS_RETURN_IF_ERROR(flag(&v, true));
      out->suid = key == "suid";
    } else if (key == "exec" || key == "noexec") {
      DBFS_RETURN_IF_ERROR(flag(&out->noexec, key == "noexec"));
    } else if (key == "allow_other") {
      DBFS_RETURN_IF_ERROR(flag(&out->allow_other, true));
    } else if (key == "default_permissions") {
      DBFS_RETURN_IF_ERROR(flag(&out->default_permissions, true));
    } else if (key == "no_default_permissions") {
      DBFS_RETURN_IF_ERROR(flag(&out->default_permissions, false));
    } else if (key == "log_level") {
      static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
          {"trace", spdlog::level::trace},
          {"debug", spdlog::level::debug},
          {"info", spdlog::level::info},
          {"warn", spdlog::level::warn},
          {"error", spdlog::level::err}};
      bool found = false;
      for (const auto& [name, level] : kLevels) {
        if (value == name) {
          out->log_level = level;
          out->fs.log_level = std::string(name);
          found = true;
        }
      }
      if (!found) {
        return Status::Invalid(fmt::format(
            "mount option log_level: '{}' is not one of trace, debug, info, warn, error", value));
      }
    } else if (key == "entry_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseSeconds(key, value, &out->cache.entry_timeout));
    } else if (key == "attr_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseSeconds(key, value, &out->cache.attr_timeout));
    } else if (key == "direct_io" && !has_value) {
      out->cache.direct_io = true;
    } else if (key == "tx_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &out->fs.tx_timeout_s));
    } else if (key == "tx_max_bytes" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/true, &out->fs.tx_max_bytes));
    } else if (key == "checkpoint_mb" && has_value) {
      uint64_t mb = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &mb));
      out->fs.checkpoint_bytes = mb << 20;
    } else if (key == "wal_segment_mb" && has_value) {
      uint64_t mb = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &mb));
      if (mb == 0 || mb > 1024) {
        return Status::Invalid("mount option wal_segment_mb: between 1 and 1024");
      }
      out->fs.wal_segment_bytes = mb << 20;
    } else if (key == "checkpoint_interval" && has_value) {
      DBFS_RETURN_IF_ERROR(
          ParseUint(key, value, /*suffixes=*/false, &out->fs.checkpoint_interval_s));
    } else if (key == "runtime_dir" && has_value) {
      if (value.empty() || value[0] != '/') {
        return Status::Invalid("mount option runtime_dir: an absolute path is needed");
      }
      out->runtime_dir = std::string(value);
    } else if (key == "log" && has_value) {
      if (value != "syslog" && value != "stderr" &&
          !(value.starts_with("file:/") && value.size() > 6)) {
        return Status::Invalid(fmt::format(
            "mount option log: '{}' is not syslog, stderr or file:/ABSOLUTE/PATH", value));
      }
      out->log = std::string(value);
    } else if (key == "history" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseDuration(key, value, &out->fs.history_window_s));
    } else if (key == "tx_keep_timeout" && has_value) {
      DBFS_RETURN_IF_ERROR(ParseDuration(key, value, &out->fs.tx_keep_timeout_s));
    } else if (key == "cluster_timeout" && has_value) {
      double seconds = 0;
      DBFS_RETURN_IF_ERROR(ParseSeconds(key, value, &seconds));
      if (seconds < 0.1 || seconds > 3600) {
        return Status::Invalid("mount option cluster_timeout: between 0.1 and 3600 seconds");
      }
      out->fs.cluster_timeout_ms = static_cast<uint64_t>(seconds * 1000);
    } else if (key == "ceph_conf" && has_value) {
      if (value.empty() || value[0] != '/') {
        return Status::Invalid("mount option ceph_conf: an absolute path is needed");
      }
      out->fs.ceph_conf = std::string(value);
    } else if (key == "ceph_id" && has_value) {
      if (value.empty()) return Status::Invalid("mount option ceph_id: a user name is needed");
      out->fs.ceph_user = std::string(value);
    } else if ((key == "elle_port" || key == "metrics_port") && has_value) {
      uint64_t port = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &port));
      if (port == 0 || port > 65535) {
        return Status::Invalid(fmt::format("mount option {}: '{}' is not a port", key, value));
      }
      (key == "elle_port" ? out->elle_port : out->metrics_port) = static_cast<int>(port);
    } else if (key == "io_uring" && has_value) {
      if (value == "auto") {
        out->io_uring = fuse::UringMode::kAuto;
      } else if (value == "on") {
        out->io_uring = fuse::UringMode::kOn;
      } else if (value == "off") {
        out->io_uring = fuse::UringMode::kOff;
      } else {
        return Status::Invalid(
            fmt::format("mount option io_uring: '{}' is not one of auto, on, off", value));
      }
    } else if (key == "io_uring_q_depth" && has_value) {
      uint64_t depth = 0;
      DBFS_RETURN_IF_ERROR(ParseUint(key, value, /*suffixes=*/false, &depth));
      if (depth == 0 || depth > 4096) {
        return Status::Invalid("mount option io_uring_q_depth: between 1 and 4096");
      }
      out->io_uring_q_depth = static_cast<unsigned>(depth);
    } else if (key == "elle_weaken") {
      // Test-only negative control: "elle_weaken" or "elle_weaken=1".
      if (has_value && value != "1" && value != "0") {
        return Status::Invalid("mount option elle_weaken takes 0 or 1");
      }
      out->elle_weaken = !has_value || value == "1";
    } else {
      std::string known;
      for (std::string_view n : kMountOptionNames) {
        known += fmt::format("{}{}", known.empty() ? "" : ", ", n);
      }
      return Status::Invalid(fmt::format("unknown mount option '{}' (known: {})", item, known));
    }
  }
  return Status::Ok();
}

namespace {
// Whether `dir` (absolute) is a mount point, from /proc/self/mountinfo.
bool IsMountPoint(const std::string& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    if (fields >> id >> parent >> dev >> root >> mountpoint &&
        UnescapeMountInfo(mountpoint) == dir) {
      return true;
    }
  }
  return false;
}
}  // namespace

Status RemountKernel(const MountOptions& o) {
  if (!IsMountPoint(o.mountpoint)) {
    return Status::NotFound(fmt::format("{} is not mounted: nothing to remount", o.mountpoint));
  }
  unsigned long flags = MS_REMOUNT;
  if (o.fs.read_only) flags |= MS_RDONLY;
  const bool root = geteuid() == 0;
  if (!o.dev.value_or(root)) flags |= MS_NODEV;
  if (!o.suid.value_or(root)) flags |= MS_NOSUID;
  if (o.noexec) flags |= MS_NOEXEC;
  if (o.fs.noatime) flags |= MS_NOATIME;
  if (::mount(nullptr, o.mountpoint.c_str(), nullptr, flags, nullptr) != 0) {
    return Status::FromErrno(errno, "remount " + o.mountpoint);
  }
  return Status::Ok();
}

Status CheckMountTarget(MountOptions* o) {
  const bool cluster = mvcc::IsClusterVolume(o->volume);
  // A cluster volume is an etcd:// address, not a directory.
  if (!cluster) DBFS_RETURN_IF_ERROR(CheckDirectory("volume", &o->volume));
  DBFS_RETURN_IF_ERROR(CheckDirectory("mountpoint", &o->mountpoint));
  if (cluster && o->runtime_dir.empty()) {
    // Many mounts of one cluster volume may share a machine: each gets its own.
    o->runtime_dir = DefaultRuntimeDir(o->volume + "@" + o->mountpoint);
  }
  std::ifstream in("/proc/self/mountinfo");
  if (!in) return Status::IOError("cannot read /proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountpoint;
    if (!(fields >> id >> parent >> dev >> root >> mountpoint)) continue;
    if (UnescapeMountInfo(mountpoint) != o->mountpoint) continue;
    std::string fstype, source;
    const size_t sep = line.find(" - ");
    if (sep != std::string::npos) {
      std::istringstream tail(line.substr(sep + 3));
      tail >> fstype >> source;
    }
    return Status::Busy(fmt::format("mountpoint {} is already a mount point ({} {})", o->mountpoint,
                                    UnescapeMountInfo(source), fstype));
  }
  if (o->volume == o->mountpoint) {
    return Status::Invalid("the volume and the mountpoint are the same directory");
  }
  return Status::Ok();
}

}  // namespace dbfs
