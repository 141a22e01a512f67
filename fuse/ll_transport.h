// How the kernel's requests reach the daemon: the classic /dev/fuse channel
// (read(2)/writev(2) by libfuse's worker threads) or FUSE-over-io_uring
// (libfuse 3.18: one ring per CPU, served by a `fuse-ring-N` thread pinned to
// it; FORGET still comes through /dev/fuse). Chosen with -o io_uring=auto|on|off
// (docs/ARCHITECTURE.md section 7, "Transport").
//
// The kernel offers io_uring only when the fuse module's parameter
// enable_uring is Y (an administrator's choice) and libfuse was built with
// liburing and libnuma. `auto` uses it when offered and says in the log why
// it did not; `on` refuses to mount (or ends the session) without it.
#pragma once

#include <atomic>
#include <mutex>
#include <string>

#include "fuse/ll_fuse.h"

namespace dbfs::fuse {

enum class UringMode { kAuto, kOn, kOff };

// "auto", "on", "off".
const char* UringModeName(UringMode m);

// Whether this build and this kernel can serve over io_uring at all, and if
// not, why (for the log and for -o io_uring=on's error).
struct UringSupport {
  bool available = false;
  std::string why_not;  // empty when available
};
// Reads the fuse module parameter (/sys/module/fuse/parameters/enable_uring;
// the environment variable DBFS_FUSE_URING_PARAM names another file, for
// tests of the refusal).
UringSupport ProbeUringSupport();

// One session's transport: what was asked, what INIT negotiated, and what
// runs. Written by the session (before the loop) and by the INIT handler;
// read by any request thread.
class Transport {
 public:
  // Before the session is created: whether libfuse is to be asked for
  // io_uring (`-o io_uring`), given `mode` and the support probe. Logs the
  // decision when it is final already (off, or auto without support).
  // Returns false when `mode` is on and io_uring is unavailable; `error`
  // then says why.
  bool Decide(UringMode mode, const UringSupport& support, std::string* error);
  bool requested() const { return requested_; }
  UringMode mode() const { return mode_; }

  // The session, for ending it when -o io_uring=on cannot be honoured.
  void set_session(fuse_session* se) { session_ = se; }
  fuse_session* session() const { return session_; }
  // Whether -o io_uring=on ended the session (OnInit / OnRingStartFailed
  // returned false); `failure()` says why.
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  std::string failure() const;

  // INIT: whether the kernel offered io_uring. Returns false when the mode
  // is on and the kernel did not offer it (the session must end).
  bool OnInit(bool kernel_offers);
  // libfuse logged that the ring failed to start after INIT (it then serves
  // /dev/fuse). Returns false when the mode is on.
  bool OnRingStartFailed(const std::string& message);
  // Every request: the first one after INIT logs which transport serves it.
  void NoteRequest(bool over_uring) {
    if (!confirmed_.load(std::memory_order_relaxed)) Confirm(over_uring);
  }
  // What serves requests now: "io_uring", "/dev/fuse", or "" before INIT.
  std::string running() const;

  // FUSE_DIRECT_IO_ALLOW_MMAP (protocol 7.39, Linux 6.6) was negotiated:
  // shared mappings of direct-I/O files work. Final before any OPEN.
  bool direct_io_mmap() const { return direct_io_mmap_.load(std::memory_order_acquire); }
  void set_direct_io_mmap(bool v) { direct_io_mmap_.store(v, std::memory_order_release); }

 private:
  void Confirm(bool over_uring);

  void Fail(std::string why);

  UringMode mode_ = UringMode::kAuto;
  fuse_session* session_ = nullptr;
  std::atomic<bool> failed_{false};
  mutable std::mutex failure_mu_;
  std::string failure_;  // guarded by failure_mu_
  bool requested_ = false;
  std::atomic<bool> ring_expected_{false};  // INIT asked for a ring and the kernel offered it
  std::atomic<bool> confirmed_{false};
  std::atomic<int> running_{0};  // 0: not yet, 1: /dev/fuse, 2: io_uring
  std::atomic<bool> direct_io_mmap_{false};
};

}  // namespace dbfs::fuse
