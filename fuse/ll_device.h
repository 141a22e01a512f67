// The /dev/fuse channel of a session, through libfuse's custom I/O hooks:
// plain read(2)/writev(2), except that the reply to the kernel's INIT is
// extended with the one flag libfuse 3.14 cannot negotiate,
// FUSE_DIRECT_IO_ALLOW_MMAP (protocol 7.39, Linux 6.6+): shared mappings of
// files opened with direct I/O (docs/ARCHITECTURE.md section 7).
#pragma once

#include <atomic>
#include <cstdint>

#include "fuse/ll_fuse.h"

namespace dbfs::fuse {

class DeviceChannel {
 public:
  // Installs the hooks on `se`, whose fd fuse_session_mount opened. `want`:
  // whether to ask for FUSE_DIRECT_IO_ALLOW_MMAP at all.
  bool Install(fuse_session* se, bool want_direct_io_mmap);

  // Whether the kernel offered FUSE_DIRECT_IO_ALLOW_MMAP and our INIT reply
  // took it. Final once the INIT request has been answered (before any OPEN).
  bool direct_io_mmap() const { return direct_io_mmap_.load(std::memory_order_acquire); }

  // The hooks' work (they find this object through the session's userdata,
  // the Adapter).
  void SawRequest(const void* buf, size_t len);
  // Writes one reply: `iov` itself, or a patched copy for INIT.
  ssize_t WriteReply(int fd, const struct iovec* iov, int count);

 private:
  bool want_ = false;
  std::atomic<uint64_t> init_unique_{0};  // INIT request that offered the flag (0: none)
  std::atomic<bool> direct_io_mmap_{false};
};

}  // namespace dbfs::fuse
