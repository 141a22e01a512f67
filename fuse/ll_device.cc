#include "fuse/ll_device.h"

#include <spdlog/spdlog.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fuse/ll_context.h"

namespace dbfs::fuse {

namespace {

// The parts of the kernel's protocol (include/uapi/linux/fuse.h) used here;
// libfuse 3.14 does not install its copy of that header.
constexpr uint32_t kOpInit = 26;
constexpr uint32_t kInitExt = 1u << 30;                    // fuse_init_in/out.flags
constexpr uint32_t kDirectIoAllowMmap2 = 1u << 4;          // flags2 bit of 1ULL << 36
constexpr size_t kInHeader = 40;                           // sizeof(fuse_in_header)
constexpr size_t kOutHeader = 16;                          // sizeof(fuse_out_header)
constexpr size_t kInitInFlags = 12, kInitInFlags2 = 16;    // offsets in fuse_init_in
constexpr size_t kInitOutFlags = 12, kInitOutFlags2 = 32;  // offsets in fuse_init_out

uint32_t Load32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
void Store32(char* p, uint32_t v) { std::memcpy(p, &v, sizeof v); }
uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

DeviceChannel& ChannelOf(void* userdata) { return static_cast<Adapter*>(userdata)->channel(); }

ssize_t HookRead(int fd, void* buf, size_t len, void* userdata) {
  const ssize_t n = ::read(fd, buf, len);
  if (n > 0) ChannelOf(userdata).SawRequest(buf, static_cast<size_t>(n));
  return n;
}

ssize_t HookWritev(int fd, struct iovec* iov, int count, void* userdata) {
  return ChannelOf(userdata).WriteReply(fd, iov, count);
}

}  // namespace

bool DeviceChannel::Install(fuse_session* se, bool want_direct_io_mmap) {
  want_ = want_direct_io_mmap;
  if (!want_) return true;
  fuse_custom_io io{};
  io.read = HookRead;
  io.writev = HookWritev;
  // Splice is not used: the handlers get plain buffers either way.
  if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) {
    spdlog::warn("fuse: custom device I/O refused; shared mappings of direct-I/O files stay off");
    want_ = false;
    return false;
  }
  return true;
}

void DeviceChannel::SawRequest(const void* buf, size_t len) {
  if (!want_ || len < kInHeader + kInitInFlags2 + 4) return;
  const char* p = static_cast<const char*>(buf);
  if (Load32(p + 4) != kOpInit) return;
  const char* in = p + kInHeader;
  const uint32_t flags = Load32(in + kInitInFlags);
  const uint32_t flags2 = (flags & kInitExt) ? Load32(in + kInitInFlags2) : 0;
  if (flags2 & kDirectIoAllowMmap2) {
    init_unique_.store(Load64(p + 8), std::memory_order_release);
  } else {
    spdlog::info(
        "fuse: the kernel does not offer FUSE_DIRECT_IO_ALLOW_MMAP; read-write "
        "descriptors keep the page cache");
  }
}

ssize_t DeviceChannel::WriteReply(int fd, const struct iovec* iov, int count) {
  const uint64_t init = init_unique_.load(std::memory_order_acquire);
  if (init == 0 || count < 1 || iov[0].iov_len < kOutHeader ||
      Load64(static_cast<const char*>(iov[0].iov_base) + 8) != init) {
    return ::writev(fd, iov, count);
  }
  init_unique_.store(0, std::memory_order_relaxed);
  std::vector<char> reply;
  for (int i = 0; i < count; ++i) {
    const char* b = static_cast<const char*>(iov[i].iov_base);
    reply.insert(reply.end(), b, b + iov[i].iov_len);
  }
  const int32_t error = static_cast<int32_t>(Load32(reply.data() + 4));
  if (error == 0 && reply.size() >= kOutHeader + kInitOutFlags2 + 4) {
    char* out = reply.data() + kOutHeader;
    Store32(out + kInitOutFlags, Load32(out + kInitOutFlags) | kInitExt);
    Store32(out + kInitOutFlags2, Load32(out + kInitOutFlags2) | kDirectIoAllowMmap2);
    direct_io_mmap_.store(true, std::memory_order_release);
    spdlog::info(
        "fuse: FUSE_DIRECT_IO_ALLOW_MMAP on: read-write descriptors of new files use "
        "direct I/O");
  }
  const ssize_t n = ::write(fd, reply.data(), reply.size());
  return n;
}

}  // namespace dbfs::fuse
