// fsx: a file-system exerciser in the style of xfstests' ltp/fsx.c.
//
// Random operations over one file — read, write, mapped read, mapped write
// (MAP_SHARED + msync), truncate up and down, fallocate (plain, KEEP_SIZE,
// PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE, ZERO_RANGE|KEEP_SIZE), copy_file_range
// (within the file and from a second file), FICLONERANGE / FIDEDUPERANGE,
// fsync / fdatasync, close + reopen (sometimes O_DIRECT) — against an
// in-memory model of the file. After every operation the whole file is read
// back through a second, cached, read-only descriptor (and through a fresh
// shared mapping every --map-check-every operations) and compared with the
// model, so a write that some later read does not see is caught at once.
//
// Reproducible: the seed is printed first; on a mismatch the last --log
// operations are printed with the first differing bytes, and the exit status
// is 1 (2 for a usage or setup error).
//
//   fsx [options] FILE
//   -N n   operations (default 10000)      -S n   seed (default: time-based)
//   -l n   maximum file size (256 KiB)     -o n   maximum operation size (64 KiB)
//   -L n   operations kept for the log (64) -p n  progress line every n ops
//   --disable=LIST / --only=LIST  operation groups: read write mapread
//          mapwrite truncate falloc punch zero copy clone dedupe fsync reopen
//          direct (O_DIRECT reopens)
//   --map-check-every=n  compare through a fresh mapping every n ops (16)
#include <fcntl.h>
#include <getopt.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

constexpr size_t kBlock = 4096;  // O_DIRECT alignment and clone granularity

enum Op {
  kRead,
  kWrite,
  kMapRead,
  kMapWrite,
  kTruncate,
  kFalloc,
  kPunch,
  kZero,
  kCopy,
  kClone,
  kDedupe,
  kFsync,
  kReopen,
  kNumOps
};
// Group names as accepted by --disable/--only ("direct" is a reopen flavour).
const char* const kOpNames[kNumOps] = {"read",  "write", "mapread", "mapwrite", "truncate",
                                       "falloc", "punch", "zero",    "copy",     "clone",
                                       "dedupe", "fsync", "reopen"};
// Relative frequencies, roughly fsx's mix: data operations dominate.
const int kWeights[kNumOps] = {14, 14, 8, 8, 6, 4, 4, 4, 5, 2, 2, 3, 3};

struct Options {
  uint64_t ops = 10000;
  uint64_t seed = 0;
  bool seed_given = false;
  size_t max_len = 256 * 1024;
  size_t max_op = 64 * 1024;
  size_t log_len = 64;
  uint64_t progress = 0;
  uint64_t map_check_every = 16;
  bool enabled[kNumOps];
  bool direct = true;
  std::string path;
};

// Aligned heap buffer (O_DIRECT needs aligned memory).
class Buffer {
 public:
  explicit Buffer(size_t n) : size_(std::max<size_t>(n, kBlock)) {
    if (posix_memalign(&p_, kBlock, size_) != 0) p_ = nullptr;
  }
  ~Buffer() { free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  uint8_t* data() { return static_cast<uint8_t*>(p_); }
  size_t size() const { return size_; }

 private:
  size_t size_;
  void* p_ = nullptr;
};

[[noreturn]] void Die(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
  std::exit(2);
}

class Fsx {
 public:
  explicit Fsx(const Options& o)
      : o_(o), rng_(o.seed), model_(o.max_len, 0), writer_(o.max_len, 0), buf_(o.max_len + kBlock),
        check_(o.max_len + kBlock) {}

  int Run() {
    Setup();
    for (step_ = 1; step_ <= o_.ops; ++step_) {
      DoOne();
      if (!Check()) return Fail();
      if (o_.progress && step_ % o_.progress == 0) {
        std::printf("fsx: %" PRIu64 " ops, size %zu\n", step_, size_);
        std::fflush(stdout);
      }
    }
    Teardown();
    std::printf("fsx: seed %" PRIu64 ": %" PRIu64 " operations passed (", o_.seed, o_.ops);
    bool first = true;
    for (int i = 0; i < kNumOps; ++i) {
      if (counts_[i] == 0) continue;
      std::printf("%s%s %" PRIu64, first ? "" : ", ", kOpNames[i], counts_[i]);
      first = false;
    }
    std::printf("; O_DIRECT reopens %" PRIu64 ")\n", direct_reopens_);
    for (const std::string& n : notes_) std::printf("fsx: note: %s\n", n.c_str());
    return 0;
  }

 private:
  // ------------------------------------------------------------ setup

  void Setup() {
    unlink(o_.path.c_str());
    fd_ = open(o_.path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0) Die("fsx: cannot create %s: %s", o_.path.c_str(), strerror(errno));
    check_fd_ = open(o_.path.c_str(), O_RDONLY);
    if (check_fd_ < 0) Die("fsx: cannot open %s: %s", o_.path.c_str(), strerror(errno));
    // The source of cross-file copies: random bytes, never changed.
    src_path_ = o_.path + ".src";
    src_.resize(o_.max_len);
    for (auto& b : src_) b = static_cast<uint8_t>(rng_() | 1);
    const int s = open(src_path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (s < 0) Die("fsx: cannot create %s: %s", src_path_.c_str(), strerror(errno));
    if (pwrite(s, src_.data(), src_.size(), 0) != static_cast<ssize_t>(src_.size())) {
      Die("fsx: cannot write %s: %s", src_path_.c_str(), strerror(errno));
    }
    src_fd_ = s;
    ProbeFeatures();
  }

  void Teardown() {
    close(fd_);
    close(check_fd_);
    close(src_fd_);
  }

  void Disable(Op op, const std::string& why) {
    if (!o_.enabled[op]) return;
    o_.enabled[op] = false;
    notes_.push_back(std::string(kOpNames[op]) + " skipped: " + why);
  }

  // Operations the filesystem does not support are turned off with a note;
  // probing happens on the empty file, so it changes nothing.
  void ProbeFeatures() {
    if (o_.enabled[kFalloc] || o_.enabled[kPunch] || o_.enabled[kZero]) {
      const struct {
        Op op;
        int mode;
      } probes[] = {{kFalloc, 0},
                    {kFalloc, FALLOC_FL_KEEP_SIZE},
                    {kPunch, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
                    {kZero, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE}};
      for (const auto& p : probes) {
        if (o_.enabled[p.op] && fallocate(fd_, p.mode, 0, kBlock) != 0) {
          Disable(p.op, std::string("fallocate mode ") + std::to_string(p.mode) + ": " +
                            strerror(errno));
        }
      }
      if (ftruncate(fd_, 0) != 0) Die("fsx: ftruncate: %s", strerror(errno));
    }
    if (o_.enabled[kClone]) {
      file_clone_range r{};
      r.src_fd = src_fd_;
      r.src_offset = 0;
      r.src_length = kBlock;
      r.dest_offset = 0;
      if (ioctl(fd_, FICLONERANGE, &r) != 0) {
        Disable(kClone, std::string("FICLONERANGE: ") + strerror(errno));
      }
      if (ftruncate(fd_, 0) != 0) Die("fsx: ftruncate: %s", strerror(errno));
    }
    if (o_.enabled[kDedupe]) {
      // Two different blocks of the source file: "differs", if supported.
      const int err = Dedupe(src_fd_, 0, kBlock, src_fd_, kBlock);
      if (err != 0) Disable(kDedupe, std::string("FIDEDUPERANGE: ") + strerror(err));
    }
    if (o_.direct && o_.enabled[kReopen]) {
      const int d = open(o_.path.c_str(), O_RDWR | O_DIRECT);
      if (d < 0) {
        o_.direct = false;
        notes_.push_back(std::string("O_DIRECT reopens skipped: ") + strerror(errno));
      } else {
        close(d);
      }
    }
  }

  // ------------------------------------------------------------ helpers

  // FIDEDUPERANGE of [off, off+len) of `src` onto `dst` at `dst_off`: 0, or
  // the errno (of the ioctl, or of the range).
  static int Dedupe(int src, uint64_t off, uint64_t len, int dst, uint64_t dst_off) {
    alignas(file_dedupe_range) char mem[sizeof(file_dedupe_range) +
                                        sizeof(file_dedupe_range_info)] = {};
    auto* r = reinterpret_cast<file_dedupe_range*>(mem);
    r->src_offset = off;
    r->src_length = len;
    r->dest_count = 1;
    r->info[0].dest_fd = dst;
    r->info[0].dest_offset = dst_off;
    if (ioctl(src, FIDEDUPERANGE, r) != 0) return errno;
    return r->info[0].status < 0 ? -r->info[0].status : 0;
  }

  uint64_t Rand(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Fills `n` bytes for step `step_` at file offset `off`: never zero, so a
  // lost write never looks like a hole, and the step is recoverable from
  // the byte (plus the offset) in a report.
  void Pattern(uint8_t* p, size_t n, uint64_t off) {
    for (size_t i = 0; i < n; ++i) {
      p[i] = static_cast<uint8_t>(1 + (step_ * 7 + (off + i)) % 255);
    }
  }

  void Log(const char* fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    std::ostringstream s;
    s << step_ << ": " << line;
    log_.push_back(s.str());
    while (log_.size() > o_.log_len) log_.pop_front();
  }

  void Syscall(bool ok, const char* what) {
    if (ok) return;
    const int err = errno;
    Log("%s FAILED: %s", what, strerror(err));
    failure_ = std::string(what) + ": " + strerror(err);
  }

  void ModelWrite(uint64_t off, const uint8_t* p, size_t n) {
    std::memcpy(model_.data() + off, p, n);
    std::fill(writer_.begin() + off, writer_.begin() + off + n, step_);
    size_ = std::max<size_t>(size_, off + n);
  }
  void ModelZero(uint64_t off, size_t n) {
    std::memset(model_.data() + off, 0, n);
    std::fill(writer_.begin() + off, writer_.begin() + off + n, step_);
  }
  void ModelResize(size_t n) {
    if (n < size_) ModelZero(n, size_ - n);  // what a later extension exposes
    size_ = n;
  }

  // With an O_DIRECT descriptor, offsets and lengths are block multiples.
  void Align(uint64_t* off, size_t* len) {
    if (!direct_) return;
    *off -= *off % kBlock;
    *len = std::max(kBlock, *len - *len % kBlock);
    if (*off + *len > o_.max_len) *off = o_.max_len - *len;
  }

  // A random range: offset below `limit`, length 1..max_op, inside max_len.
  void PickRange(uint64_t limit, uint64_t* off, size_t* len) {
    *off = Rand(std::max<uint64_t>(limit, 1));
    *len = 1 + Rand(o_.max_op);
    if (*off + *len > o_.max_len) *len = o_.max_len - *off;
    if (*len == 0) {
      *off = 0;
      *len = 1;
    }
  }

  // ------------------------------------------------------------ operations

  Op Pick() {
    int total = 0;
    for (int i = 0; i < kNumOps; ++i) total += o_.enabled[i] ? kWeights[i] : 0;
    int r = static_cast<int>(Rand(total));
    for (int i = 0; i < kNumOps; ++i) {
      if (!o_.enabled[i]) continue;
      if (r < kWeights[i]) return static_cast<Op>(i);
      r -= kWeights[i];
    }
    return kRead;
  }

  void DoOne() {
    const Op op = Pick();
    ++counts_[op];
    switch (op) {
      case kRead: return DoRead();
      case kWrite: return DoWrite();
      case kMapRead: return DoMapRead();
      case kMapWrite: return DoMapWrite();
      case kTruncate: return DoTruncate();
      case kFalloc: return DoFalloc();
      case kPunch: return DoPunch();
      case kZero: return DoZero();
      case kCopy: return DoCopy();
      case kClone: return DoClone();
      case kDedupe: return DoDedupe();
      case kFsync: return DoFsync();
      case kReopen: return DoReopen();
      case kNumOps: break;
    }
  }

  void DoRead() {
    if (size_ == 0) return Log("read skipped (empty file)");
    uint64_t off;
    size_t len;
    PickRange(size_, &off, &len);
    Align(&off, &len);
    Log("read 0x%" PRIx64 " len 0x%zx%s", off, len, direct_ ? " (direct)" : "");
    const ssize_t n = pread(fd_, buf_.data(), len, static_cast<off_t>(off));
    Syscall(n >= 0, "pread");
    if (n < 0) return;
    const size_t want = off >= size_ ? 0 : std::min<size_t>(len, size_ - off);
    if (static_cast<size_t>(n) != want) {
      failure_ = "pread returned " + std::to_string(n) + ", expected " + std::to_string(want);
      return;
    }
    Compare(buf_.data(), off, want, "pread");
  }

  void DoWrite() {
    uint64_t off;
    size_t len;
    PickRange(o_.max_len, &off, &len);
    Align(&off, &len);
    Pattern(buf_.data(), len, off);
    Log("write 0x%" PRIx64 " len 0x%zx%s%s", off, len, direct_ ? " (direct)" : "",
        off > size_ ? " (past EOF)" : "");
    const ssize_t n = pwrite(fd_, buf_.data(), len, static_cast<off_t>(off));
    Syscall(n == static_cast<ssize_t>(len), "pwrite");
    if (n > 0) ModelWrite(off, buf_.data(), static_cast<size_t>(n));
  }

  // Maps [off, off+len) of the file shared (page-aligned start).
  uint8_t* Map(uint64_t off, size_t len, int prot, uint64_t* pg, size_t* maplen) {
    const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    *pg = off - off % page;
    *maplen = static_cast<size_t>(off + len - *pg);
    void* p = mmap(nullptr, *maplen, prot, MAP_SHARED, fd_, static_cast<off_t>(*pg));
    if (p == MAP_FAILED) {
      Syscall(false, "mmap");
      return nullptr;
    }
    return static_cast<uint8_t*>(p) + (off - *pg);
  }

  void DoMapRead() {
    if (size_ == 0) return Log("mapread skipped (empty file)");
    uint64_t off;
    size_t len;
    PickRange(size_, &off, &len);
    len = std::min<size_t>(len, size_ - off);
    Log("mapread 0x%" PRIx64 " len 0x%zx", off, len);
    uint64_t pg;
    size_t maplen;
    uint8_t* p = Map(off, len, PROT_READ, &pg, &maplen);
    if (p == nullptr) return;
    Compare(p, off, len, "mapped read");
    munmap(p - (off - pg), maplen);
  }

  void DoMapWrite() {
    uint64_t off;
    size_t len;
    PickRange(o_.max_len, &off, &len);
    Pattern(buf_.data(), len, off);
    Log("mapwrite 0x%" PRIx64 " len 0x%zx%s", off, len, off + len > size_ ? " (extends)" : "");
    if (off + len > size_) {
      // A mapping cannot extend a file: grow it first, like fsx.
      Syscall(ftruncate(fd_, static_cast<off_t>(off + len)) == 0, "ftruncate (mapwrite)");
      if (!failure_.empty()) return;
      ModelResize(off + len);
    }
    uint64_t pg;
    size_t maplen;
    uint8_t* p = Map(off, len, PROT_READ | PROT_WRITE, &pg, &maplen);
    if (p == nullptr) return;
    std::memcpy(p, buf_.data(), len);
    Syscall(msync(p - (off - pg), maplen, MS_SYNC) == 0, "msync");
    munmap(p - (off - pg), maplen);
    ModelWrite(off, buf_.data(), len);
  }

  void DoTruncate() {
    const size_t n = Rand(o_.max_len + 1);
    Log("truncate 0x%zx -> 0x%zx (%s)", size_, n, n >= size_ ? "up" : "down");
    Syscall(ftruncate(fd_, static_cast<off_t>(n)) == 0, "ftruncate");
    if (failure_.empty()) ModelResize(n);
  }

  void DoFalloc() {
    uint64_t off;
    size_t len;
    PickRange(o_.max_len, &off, &len);
    const bool keep = Rand(2) == 0;
    Log("fallocate%s 0x%" PRIx64 " len 0x%zx", keep ? " KEEP_SIZE" : "", off, len);
    Syscall(fallocate(fd_, keep ? FALLOC_FL_KEEP_SIZE : 0, static_cast<off_t>(off),
                      static_cast<off_t>(len)) == 0,
            "fallocate");
    if (failure_.empty() && !keep && off + len > size_) ModelResize(off + len);
  }

  void DoPunch() {
    uint64_t off;
    size_t len;
    PickRange(std::max<size_t>(size_, 1), &off, &len);
    Log("punch_hole 0x%" PRIx64 " len 0x%zx", off, len);
    Syscall(fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(off),
                      static_cast<off_t>(len)) == 0,
            "fallocate PUNCH_HOLE");
    if (failure_.empty() && off < size_) ModelZero(off, std::min<size_t>(len, size_ - off));
  }

  void DoZero() {
    uint64_t off;
    size_t len;
    PickRange(o_.max_len, &off, &len);
    const bool keep = Rand(2) == 0;
    Log("zero_range%s 0x%" PRIx64 " len 0x%zx", keep ? " KEEP_SIZE" : "", off, len);
    const int mode = FALLOC_FL_ZERO_RANGE | (keep ? FALLOC_FL_KEEP_SIZE : 0);
    Syscall(fallocate(fd_, mode, static_cast<off_t>(off), static_cast<off_t>(len)) == 0,
            "fallocate ZERO_RANGE");
    if (!failure_.empty()) return;
    if (off < size_) ModelZero(off, std::min<size_t>(len, size_ - off));
    if (!keep && off + len > size_) ModelResize(off + len);
  }

  // copy_file_range, within the file (non-overlapping ranges) or from the
  // source file. Short copies are continued, as callers must.
  void DoCopy() {
    const bool from_src = Rand(2) == 0;
    const size_t src_size = from_src ? src_.size() : size_;
    if (src_size == 0) return Log("copy skipped (empty file)");
    uint64_t in, out;
    size_t len;
    PickRange(src_size, &in, &len);
    len = std::min<size_t>(len, src_size - in);
    out = Rand(o_.max_len - len + 1);
    if (direct_) {
      // Through an O_DIRECT descriptor the copy is direct I/O too: blocks.
      if (src_size < kBlock) return Log("copy skipped (small file, O_DIRECT)");
      in -= in % kBlock;
      out -= out % kBlock;
      len = std::max(kBlock, len - len % kBlock);
      len = std::min<size_t>(len, (src_size - in) / kBlock * kBlock);
      if (len == 0) return Log("copy skipped (short source, O_DIRECT)");
    }
    if (!from_src && in < out + len && out < in + len) {
      return Log("copy skipped (overlapping ranges)");
    }
    Log("copy_file_range %s 0x%" PRIx64 " -> 0x%" PRIx64 " len 0x%zx", from_src ? "src" : "self",
        in, out, len);
    // Snapshot the source bytes from the model before the copy changes it.
    std::vector<uint8_t> bytes(from_src ? src_.begin() + in : model_.begin() + in,
                               from_src ? src_.begin() + in + len : model_.begin() + in + len);
    size_t done = 0;
    while (done < len) {
      loff_t a = static_cast<loff_t>(in + done), b = static_cast<loff_t>(out + done);
      const ssize_t n = copy_file_range(from_src ? src_fd_ : fd_, &a, fd_, &b, len - done, 0);
      if (n < 0 && errno == EINTR) continue;
      Syscall(n >= 0, "copy_file_range");
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    if (done > 0) ModelWrite(out, bytes.data(), done);
  }

  void DoClone() {
    // Block-aligned ranges from the source file.
    uint64_t in = Rand(src_.size() / kBlock) * kBlock;
    size_t len = (1 + Rand(std::max<size_t>(o_.max_op / kBlock, 1))) * kBlock;
    len = std::min(len, src_.size() - in);
    const uint64_t out = Rand((o_.max_len - len) / kBlock + 1) * kBlock;
    Log("clone src 0x%" PRIx64 " -> 0x%" PRIx64 " len 0x%zx", in, out, len);
    file_clone_range r{};
    r.src_fd = src_fd_;
    r.src_offset = in;
    r.src_length = len;
    r.dest_offset = out;
    Syscall(ioctl(fd_, FICLONERANGE, &r) == 0, "FICLONERANGE");
    if (failure_.empty()) ModelWrite(out, src_.data() + in, len);
  }

  void DoDedupe() {
    // Dedupe the file's range onto itself elsewhere when the bytes match
    // (the usual outcome: FILE_DEDUPE_RANGE_DIFFERS, nothing changes).
    if (size_ < 2 * kBlock) return Log("dedupe skipped (small file)");
    const uint64_t a = Rand(size_ / kBlock) * kBlock;
    const uint64_t b = Rand(size_ / kBlock) * kBlock;
    const size_t len = std::min<size_t>(kBlock, size_ - std::max(a, b));
    if (a < b + len && b < a + len) return Log("dedupe skipped (overlapping ranges)");
    Log("dedupe 0x%" PRIx64 " -> 0x%" PRIx64 " len 0x%zx", a, b, len);
    const int err = Dedupe(fd_, a, len, fd_, b);
    errno = err;
    Syscall(err == 0, "FIDEDUPERANGE");
    // Identical bytes stay identical; the model does not change either way.
  }

  void DoFsync() {
    const bool data = Rand(2) == 0;
    Log("%s", data ? "fdatasync" : "fsync");
    Syscall((data ? fdatasync(fd_) : fsync(fd_)) == 0, data ? "fdatasync" : "fsync");
  }

  void DoReopen() {
    const bool direct = o_.direct && Rand(3) == 0;
    Log("close + reopen%s", direct ? " O_DIRECT" : "");
    Syscall(close(fd_) == 0, "close");
    fd_ = open(o_.path.c_str(), O_RDWR | (direct ? O_DIRECT : 0));
    Syscall(fd_ >= 0, "open");
    direct_ = direct;
    if (direct) ++direct_reopens_;
  }

  // ------------------------------------------------------------ checking

  void Compare(const uint8_t* got, uint64_t off, size_t len, const char* how) {
    if (std::memcmp(got, model_.data() + off, len) == 0) return;
    size_t i = 0;
    while (got[i] == model_[off + i]) ++i;
    size_t j = len;
    while (got[j - 1] == model_[off + j - 1]) --j;
    std::ostringstream s;
    s << how << " mismatch: first bad byte at 0x" << std::hex << off + i << ", last at 0x"
      << off + j - 1 << std::dec << " (" << j - i << " bytes span)\n";
    s << "  offset      expected  got  (last written by op)\n";
    for (size_t k = i; k < std::min(j, i + 16); ++k) {
      char line[96];
      std::snprintf(line, sizeof line, "  0x%08" PRIx64 "  0x%02x      0x%02x %s%" PRIu64 "\n",
                    off + k, model_[off + k], got[k], writer_[off + k] ? "op " : "never ",
                    writer_[off + k]);
      s << line;
    }
    failure_ = s.str();
  }

  // Full-file compare through the cached read-only descriptor, and every
  // map_check_every steps through a fresh shared read mapping.
  bool Check() {
    if (!failure_.empty()) return false;
    struct stat st {};
    if (fstat(check_fd_, &st) != 0) {
      failure_ = std::string("fstat: ") + strerror(errno);
      return false;
    }
    if (static_cast<size_t>(st.st_size) != size_) {
      failure_ = "size is " + std::to_string(st.st_size) + ", expected " + std::to_string(size_);
      return false;
    }
    size_t got = 0;
    while (got < size_) {
      const ssize_t n = pread(check_fd_, check_.data() + got, size_ - got, static_cast<off_t>(got));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        failure_ = "full-file read returned " + std::to_string(n) + " at " + std::to_string(got) +
                   (n < 0 ? std::string(": ") + strerror(errno) : "");
        return false;
      }
      got += static_cast<size_t>(n);
    }
    Compare(check_.data(), 0, size_, "full-file read");
    if (!failure_.empty()) return false;
    if (o_.map_check_every && step_ % o_.map_check_every == 0 && size_ > 0) {
      void* p = mmap(nullptr, size_, PROT_READ, MAP_SHARED, check_fd_, 0);
      if (p == MAP_FAILED) {
        failure_ = std::string("mmap for the check: ") + strerror(errno);
        return false;
      }
      Compare(static_cast<uint8_t*>(p), 0, size_, "full-file mapped read");
      munmap(p, size_);
    }
    return failure_.empty();
  }

  int Fail() {
    std::fprintf(stderr, "fsx: FAILED at operation %" PRIu64 " (seed %" PRIu64 ", file %s)\n",
                 step_, o_.seed, o_.path.c_str());
    std::fprintf(stderr, "%s\n", failure_.c_str());
    std::fprintf(stderr, "fsx: last %zu operations:\n", log_.size());
    for (const std::string& l : log_) std::fprintf(stderr, "  %s\n", l.c_str());
    std::fprintf(stderr, "fsx: rerun: fsx -S %" PRIu64 " -N %" PRIu64 " -l %zu -o %zu ...\n",
                 o_.seed, o_.ops, o_.max_len, o_.max_op);
    return 1;
  }

  Options o_;
  std::mt19937_64 rng_;
  std::vector<uint8_t> model_;
  std::vector<uint64_t> writer_;  // per byte: the step that last wrote it
  std::vector<uint8_t> src_;
  size_t size_ = 0;
  Buffer buf_, check_;
  int fd_ = -1, check_fd_ = -1, src_fd_ = -1;
  bool direct_ = false;
  std::string src_path_;
  uint64_t step_ = 0;
  uint64_t counts_[kNumOps] = {};
  uint64_t direct_reopens_ = 0;
  std::deque<std::string> log_;
  std::vector<std::string> notes_;
  std::string failure_;
};

void ParseList(const char* list, bool on, Options* o) {
  std::string s(list);
  std::stringstream in(s);
  std::string name;
  while (std::getline(in, name, ',')) {
    if (name.empty()) continue;
    if (name == "direct") {
      o->direct = on;
      continue;
    }
    bool found = false;
    for (int i = 0; i < kNumOps; ++i) {
      if (name == kOpNames[i]) {
        o->enabled[i] = on;
        found = true;
      }
    }
    if (!found) Die("fsx: unknown operation group '%s'", name.c_str());
  }
}

uint64_t ParseNumber(const char* arg, const char* what) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(arg, &end, 0);
  uint64_t mult = 1;
  if (end != nullptr && (*end == 'k' || *end == 'K')) mult = 1024, ++end;
  else if (end != nullptr && (*end == 'm' || *end == 'M')) mult = 1024 * 1024, ++end;
  if (errno != 0 || end == arg || *end != '\0') Die("fsx: %s: '%s' is not a number", what, arg);
  return v * mult;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  std::fill(std::begin(o.enabled), std::end(o.enabled), true);
  enum { kDisable = 1000, kOnly, kMapCheck };
  static const option kLong[] = {{"disable", required_argument, nullptr, kDisable},
                                 {"only", required_argument, nullptr, kOnly},
                                 {"map-check-every", required_argument, nullptr, kMapCheck},
                                 {nullptr, 0, nullptr, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "N:S:l:o:L:p:", kLong, nullptr)) != -1) {
    switch (c) {
      case 'N': o.ops = ParseNumber(optarg, "-N"); break;
      case 'S':
        o.seed = ParseNumber(optarg, "-S");
        o.seed_given = true;
        break;
      case 'l': o.max_len = ParseNumber(optarg, "-l"); break;
      case 'o': o.max_op = ParseNumber(optarg, "-o"); break;
      case 'L': o.log_len = ParseNumber(optarg, "-L"); break;
      case 'p': o.progress = ParseNumber(optarg, "-p"); break;
      case kDisable: ParseList(optarg, false, &o); break;
      case kOnly:
        std::fill(std::begin(o.enabled), std::end(o.enabled), false);
        o.direct = false;
        ParseList(optarg, true, &o);
        break;
      case kMapCheck: o.map_check_every = ParseNumber(optarg, "--map-check-every"); break;
      default:
        Die("usage: fsx [-N ops] [-S seed] [-l maxlen] [-o maxoplen] [-L loglen] [-p every] "
            "[--disable=LIST] [--only=LIST] [--map-check-every=N] FILE");
    }
  }
  if (optind + 1 != argc) Die("fsx: exactly one FILE expected");
  o.path = argv[optind];
  if (o.max_len < 2 * kBlock || o.max_len % kBlock != 0) {
    Die("fsx: -l must be a multiple of %zu, at least %zu", kBlock, 2 * kBlock);
  }
  o.max_op = std::clamp<size_t>(o.max_op, 1, o.max_len);
  if (!o.seed_given) {
    struct timespec ts {};
    clock_gettime(CLOCK_REALTIME, &ts);
    o.seed = static_cast<uint64_t>(ts.tv_sec) * 1000003u ^ static_cast<uint64_t>(ts.tv_nsec) ^
             static_cast<uint64_t>(getpid());
  }
  std::printf("fsx: seed %" PRIu64 ", %" PRIu64 " ops, file %s, max size %zu, max op %zu\n",
              o.seed, o.ops, o.path.c_str(), o.max_len, o.max_op);
  std::fflush(stdout);
  return Fsx(o).Run();
}
