#include "fuse/ll_transport.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <fstream>

namespace dbfs::fuse {

namespace {
constexpr const char* kUringParam = "/sys/module/fuse/parameters/enable_uring";
constexpr int kClassic = 1, kUring = 2;
}  // namespace

const char* UringModeName(UringMode m) {
  switch (m) {
    case UringMode::kOn:
      return "on";
    case UringMode::kOff:
      return "off";
    case UringMode::kAuto:
      break;
  }
  return "auto";
}

UringSupport ProbeUringSupport() {
  UringSupport s;
#ifndef DBFS_LIBFUSE_HAVE_URING
  s.why_not =
      "this dbfs-mount was built without FUSE-over-io_uring (liburing-dev and libnuma-dev were "
      "missing at build time; tools/install-deps.sh installs them)";
  return s;
#else
  const char* env = std::getenv("DBFS_FUSE_URING_PARAM");
  const std::string path = env != nullptr && *env != '\0' ? env : kUringParam;
  std::ifstream in(path);
  std::string value;
  if (!in || !(in >> value)) {
    s.why_not = "the kernel has no FUSE-over-io_uring (" + path +
                " is missing; it needs Linux 6.14+ with CONFIG_FUSE_IO_URING)";
    return s;
  }
  if (value != "Y" && value != "1") {
    s.why_not = "the fuse module's enable_uring parameter is " + value + " (as root: echo Y > " +
                path + ", or 'options fuse enable_uring=1' in /etc/modprobe.d/)";
    return s;
  }
  s.available = true;
  return s;
#endif
}

bool Transport::Decide(UringMode mode, const UringSupport& support, std::string* error) {
  mode_ = mode;
  requested_ = false;
  if (mode == UringMode::kOff) {
    spdlog::info("fuse: transport /dev/fuse (io_uring=off)");
    return true;
  }
  if (!support.available) {
    if (mode == UringMode::kOn) {
      *error = "-o io_uring=on: io_uring is unavailable: " + support.why_not;
      return false;
    }
    spdlog::info("fuse: transport /dev/fuse (io_uring=auto fell back: {})", support.why_not);
    return true;
  }
  requested_ = true;
  return true;
}

bool Transport::OnInit(bool kernel_offers) {
  if (!requested_) return true;
  if (kernel_offers) {
    ring_expected_.store(true, std::memory_order_release);
    return true;
  }
  if (mode_ == UringMode::kOn) {
    Fail("the kernel's INIT does not offer io_uring");
    return false;
  }
  spdlog::info(
      "fuse: transport /dev/fuse (io_uring=auto fell back: the kernel's INIT does not offer "
      "io_uring)");
  return true;
}

bool Transport::OnRingStartFailed(const std::string& message) {
  ring_expected_.store(false, std::memory_order_release);
  if (mode_ == UringMode::kOn) {
    Fail("the rings did not start: " + message);
    return false;
  }
  spdlog::warn("fuse: transport /dev/fuse (io_uring=auto fell back: the rings did not start: {})",
               message);
  return true;
}

void Transport::Confirm(bool over_uring) {
  // Requests that always come through /dev/fuse (FORGET, INTERRUPT) say
  // nothing while a ring is expected: wait for one that could use it.
  if (!over_uring && ring_expected_.load(std::memory_order_acquire)) return;
  if (confirmed_.exchange(true)) return;
  running_.store(over_uring ? kUring : kClassic, std::memory_order_release);
  if (over_uring) {
    spdlog::info("fuse: transport io_uring (requests arrive through the rings)");
  } else if (requested_) {
    // Fallbacks were logged with their reason when they happened.
    spdlog::debug("fuse: first request through /dev/fuse");
  }
}

void Transport::Fail(std::string why) {
  spdlog::error("fuse: -o io_uring=on, but {}: unmounting", why);
  {
    std::lock_guard<std::mutex> g(failure_mu_);
    failure_ = "-o io_uring=on: " + std::move(why);
  }
  failed_.store(true, std::memory_order_release);
}

std::string Transport::failure() const {
  std::lock_guard<std::mutex> g(failure_mu_);
  return failure_;
}

std::string Transport::running() const {
  switch (running_.load(std::memory_order_acquire)) {
    case kUring:
      return "io_uring";
    case kClassic:
      return "/dev/fuse";
  }
  return "";
}

}  // namespace dbfs::fuse
