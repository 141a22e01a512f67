// Data coherence between cached, direct-I/O (sync and asynchronous) and
// mapped descriptors of one file (issue 12, items 1 and 2): after a write
// returns, no read that starts later returns older bytes, and no write —
// through a mapping or write(2) — is lost when they race.
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

class IoCoherence : public MountTest {};

// Linux AIO (io_setup / io_submit / io_getevents), the interface libaio
// wraps, used through the raw system calls.
class AioContext {
 public:
  AioContext() {
    if (syscall(SYS_io_setup, 8, &ctx_) != 0) ctx_ = 0;
  }
  ~AioContext() {
    if (ctx_ != 0) syscall(SYS_io_destroy, ctx_);
  }
  AioContext(const AioContext&) = delete;
  AioContext& operator=(const AioContext&) = delete;
  bool ok() const { return ctx_ != 0; }

  // Submits one write and waits for its completion; returns its result.
  long PWrite(int fd, const void* buf, size_t len, off_t off) {
    iocb cb{};
    cb.aio_fildes = static_cast<uint32_t>(fd);
    cb.aio_lio_opcode = IOCB_CMD_PWRITE;
    cb.aio_buf = reinterpret_cast<uint64_t>(buf);
    cb.aio_nbytes = len;
    cb.aio_offset = off;
    iocb* cbs[1] = {&cb};
    if (syscall(SYS_io_submit, ctx_, 1, cbs) != 1) return -errno;
    io_event ev{};
    long n;
    while ((n = syscall(SYS_io_getevents, ctx_, 1, 1, &ev, nullptr)) < 0 && errno == EINTR) {
    }
    return n == 1 ? static_cast<long>(ev.res) : -errno;
  }

 private:
  aio_context_t ctx_ = 0;
};

enum class Writer {
  kAioODirectOnCachedFile,  // io_submit, O_RDWR|O_DIRECT of an existing file
  kAioWriteOnlyODirect,     // io_submit, O_WRONLY|O_DIRECT (a direct-I/O handle)
  kPwriteWriteOnly,         // pwrite, O_WRONLY (a direct-I/O handle)
  kPwriteODirect,           // pwrite, O_RDWR|O_DIRECT of an existing file
};
enum class Reader { kPread, kMapping };

const char* Name(Writer w) {
  switch (w) {
    case Writer::kAioODirectOnCachedFile: return "io_submit on O_RDWR|O_DIRECT";
    case Writer::kAioWriteOnlyODirect: return "io_submit on O_WRONLY|O_DIRECT";
    case Writer::kPwriteWriteOnly: return "pwrite on O_WRONLY";
    case Writer::kPwriteODirect: return "pwrite on O_RDWR|O_DIRECT";
  }
  return "?";
}

// One writer overwrites blocks with increasing round numbers while three
// readers read random blocks through the page cache (a cached read-only
// descriptor, or a shared read mapping). A reader notes the newest completed
// round of a block before it starts reading; reading an older round is a
// stale read. Returns the number of stale reads (and how many reads ran, and
// how many of them could have been stale: their block had a completed write).
// The writer goes on past `rounds` until kMinExposed such reads ran (the
// readers may start late on a loaded machine), at most 50 x `rounds`.
constexpr long kMinExposed = 100;

long StaleReads(const std::string& f, Writer w, Reader r, int rounds, long* reads_out,
                long* exposed_out) {
  constexpr size_t kBlock = 4096, kBlocks = 64;
  {
    std::string zeros(kBlock * kBlocks, '\0');
    if (!WriteFile(f, zeros)) return -1;
  }
  int flags = O_RDWR | O_DIRECT;
  if (w == Writer::kAioWriteOnlyODirect) flags = O_WRONLY | O_DIRECT;
  if (w == Writer::kPwriteWriteOnly) flags = O_WRONLY;
  Fd wfd(open(f.c_str(), flags));
  Fd rfd(open(f.c_str(), O_RDONLY));
  if (wfd.get() < 0 || rfd.get() < 0) return -1;
  void* map = mmap(nullptr, kBlock * kBlocks, PROT_READ, MAP_SHARED, rfd.get(), 0);
  if (map == MAP_FAILED) return -1;
  const char* m = static_cast<const char*>(map);

  std::vector<std::atomic<uint32_t>> done(kBlocks);
  std::atomic<bool> stop{false};
  std::atomic<long> stale{0}, reads{0}, exposed{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      char buf[kBlock];
      uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<uint64_t>(t + 1);
      while (!stop.load(std::memory_order_acquire)) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const size_t i = x % kBlocks;
        const uint32_t want = done[i].load(std::memory_order_acquire);
        uint32_t got;
        if (r == Reader::kMapping) {
          got = __atomic_load_n(reinterpret_cast<const uint32_t*>(m + i * kBlock), __ATOMIC_ACQUIRE);
        } else {
          if (pread(rfd.get(), buf, kBlock, static_cast<off_t>(i * kBlock)) != kBlock) {
            stale.fetch_add(1000000);  // a failed read fails the test loudly
            return;
          }
          std::memcpy(&got, buf, sizeof got);
        }
        reads.fetch_add(1, std::memory_order_relaxed);
        if (want > 0) exposed.fetch_add(1, std::memory_order_relaxed);
        if (got < want) stale.fetch_add(1);
      }
    });
  }
  AioContext aio;
  void* wb = nullptr;
  long failures = 0;
  if (!aio.ok() || posix_memalign(&wb, kBlock, kBlock) != 0) failures = 1;
  for (uint32_t round = 1; failures == 0; ++round) {
    if (round > static_cast<uint32_t>(rounds) &&
        (exposed.load() >= kMinExposed || round > 50 * static_cast<uint32_t>(rounds))) {
      break;
    }
    for (size_t i = 0; i < kBlocks; ++i) {
      std::memset(wb, static_cast<int>(round), kBlock);
      std::memcpy(wb, &round, sizeof round);
      const off_t off = static_cast<off_t>(i * kBlock);
      long n;
      if (w == Writer::kAioODirectOnCachedFile || w == Writer::kAioWriteOnlyODirect) {
        n = aio.PWrite(wfd.get(), wb, kBlock, off);
      } else {
        n = pwrite(wfd.get(), wb, kBlock, off);
      }
      if (n != static_cast<long>(kBlock)) {
        ++failures;
        break;
      }
      done[i].store(round, std::memory_order_release);
    }
  }
  stop.store(true, std::memory_order_release);
  for (auto& t : readers) t.join();
  free(wb);
  munmap(map, kBlock * kBlocks);
  *reads_out = reads.load();
  *exposed_out = exposed.load();
  return failures ? -1 : stale.load();
}

// Regression (issue 12 item 2): the kernel invalidates the cached pages of a
// direct write before it sends the WRITE, not after, and an asynchronous
// (io_submit) completion does not even invalidate the attributes. A reader
// that faulted a page in meanwhile kept the old bytes: mapped readers saw
// millions of stale reads, cached preads some hundreds.
TEST_F(IoCoherence, ReadersNeverSeeOlderBytesAfterDirectAndAioWritesComplete) {
  for (Writer w : {Writer::kAioODirectOnCachedFile, Writer::kAioWriteOnlyODirect,
                   Writer::kPwriteWriteOnly, Writer::kPwriteODirect}) {
    for (Reader r : {Reader::kPread, Reader::kMapping}) {
      long reads = 0, exposed = 0;
      const long stale = StaleReads(path("f"), w, r, 12, &reads, &exposed);
      EXPECT_EQ(0, stale) << Name(w) << " with a " << (r == Reader::kPread ? "pread" : "mapped")
                          << " reader: " << stale << " stale of " << reads
                          << " reads (-1: setup or write failed)";
      // The race must have been run: enough reads of blocks already
      // rewritten (each could have returned older bytes).
      EXPECT_GE(exposed, kMinExposed) << Name(w) << " with a "
                              << (r == Reader::kPread ? "pread" : "mapped") << " reader: only "
                              << exposed << " of " << reads << " reads followed a write";
    }
  }
}

// Issue 12 item 1: threads storing into a shared mapping while other
// threads pwrite other ranges of the same file — regions page-aligned,
// unaligned (sharing pages) and larger than a folio; the pwriters on the
// mapping's descriptor, on their own cached descriptors, or O_DIRECT; the
// file new (a direct-I/O descriptor), pre-filled, or sized by ftruncate.
// Every region holds its last writer's bytes afterwards.
struct RaceCase {
  size_t region;
  int prefill;  // 0 ftruncate (holes), 1 written, 2 grown by one pwrite at the end
  int fds;      // 0 the mapping's descriptor (a new file's: direct I/O), 1 own cached, 2 own O_DIRECT
};

// Runs `cases`; `path` names a file on the mount.
void RaceMappedStoresWithPwrite(const std::function<std::string(const std::string&)>& path,
                                const std::vector<RaceCase>& cases) {
  constexpr int kThreads = 6, kRounds = 4;
  for (const RaceCase& c : cases) {
    const size_t kN = c.region < 100000 ? 96 : 12, size = c.region * kN;
    const std::string f = path("m");
    unlink(f.c_str());
    if (c.prefill == 1) {
      ASSERT_TRUE(WriteFile(f, std::string(size, 'z')));
    }
    Fd fd(open(f.c_str(), O_RDWR | O_CREAT, 0644));
    ASSERT_GE(fd.get(), 0);
    if (c.prefill == 0) {
      ASSERT_SYS(ftruncate(fd.get(), static_cast<off_t>(size)));
    } else if (c.prefill == 2) {
      ASSERT_EQ(1, pwrite(fd.get(), "z", 1, static_cast<off_t>(size - 1)));
    }
    void* map = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    ASSERT_NE(MAP_FAILED, map);
    char* m = static_cast<char*>(map);
    std::atomic<int> write_errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < kThreads; ++t) {
      ts.emplace_back([&, t] {
        Fd own;
        int wfd = fd.get();
        if (t % 2 == 1 && c.fds != 0) {
          own = Fd(open(f.c_str(), O_RDWR | (c.fds == 2 ? O_DIRECT : 0)));
          wfd = own.get();
        }
        std::string buf(c.region, '\0');
        for (int round = 0; round < kRounds; ++round) {
          const char v = static_cast<char>('A' + t * kRounds + round);
          for (size_t i = static_cast<size_t>(t); i < kN; i += kThreads) {
            if (t % 2 == 0) {
              std::memset(m + i * c.region, v, c.region);
            } else {
              std::memset(buf.data(), v, c.region);
              if (!PWriteAll(wfd, buf, static_cast<off_t>(i * c.region))) write_errors.fetch_add(1);
            }
          }
        }
      });
    }
    for (auto& t : ts) t.join();
    ASSERT_SYS(msync(m, size, MS_SYNC));
    munmap(m, size);
    fd = Fd();
    EXPECT_EQ(0, write_errors.load());
    const std::string back = ReadFile(f);
    ASSERT_EQ(size, back.size());
    int bad = 0;
    for (size_t i = 0; i < kN; ++i) {
      const int t = static_cast<int>(i % kThreads);
      const char want = static_cast<char>('A' + t * kRounds + kRounds - 1);
      const size_t at = back.find_first_not_of(want, i * c.region);
      if (at < (i + 1) * c.region) {
        if (++bad <= 3) {
          ADD_FAILURE() << "region " << i << " (" << (t % 2 == 0 ? "mapped" : "pwrite")
                        << ", region size " << c.region << ", prefill " << c.prefill << ", fds "
                        << c.fds << "): byte " << at - i * c.region << " is "
                        << static_cast<int>(back[at]) << ", expected '" << want << "'";
        }
      }
    }
    EXPECT_EQ(0, bad);
  }
}


// Item 1 as far as it holds: page-aligned regions with every kind of
// descriptor, and unaligned ones pwritten through the page cache.
TEST_F(IoCoherence, MappedStoresRacingWithPwriteAreNeverLost) {
  std::vector<RaceCase> cases;
  for (size_t region : {size_t{4096}, size_t{1000}, size_t{200000}}) {
    for (int prefill : {0, 1, 2}) {
      for (int fds : {0, 1, 2}) {
        // Unaligned regions pwritten with direct I/O (the mapping's
        // direct-I/O descriptor, or O_DIRECT): the test below.
        if (region % 4096 != 0 && fds != 1) continue;
        cases.push_back({region, prefill, fds});
      }
    }
  }
  RaceMappedStoresWithPwrite([this](const std::string& r) { return path(r); }, cases);
}

// Issue 12 item 1: a pwrite with direct I/O (a direct-I/O descriptor — a
// new file opened O_RDWR — or O_DIRECT) whose first or last page is shared
// with a region other threads store into through a shared mapping. The
// kernel drops the pwrite range's pages *before* it sends the WRITE; a store
// into the neighbouring region faults the shared edge page back in
// meanwhile — reading the bytes from before the WRITE commits — and dirties
// it, and the writeback of that whole page used to put those old bytes back
// over the pwrite's edge (a pwrite region whose first bytes held the previous
// round's value, in ~1 of 4 runs). The daemon now leaves bytes of a written
// back page that still hold what a write replaced (fs/write_edges.h).
TEST_F(IoCoherence, UnalignedDirectPwriteSharingAPageWithMappedStoresIsNeverLost) {
  std::vector<RaceCase> cases;
  for (int i = 0; i < 4; ++i) {
    for (size_t region : {size_t{1000}, size_t{200000}}) {
      for (int prefill : {0, 1, 2}) {
        for (int fds : {0, 2}) cases.push_back({region, prefill, fds});
      }
    }
  }
  RaceMappedStoresWithPwrite([this](const std::string& r) { return path(r); }, cases);
}

}  // namespace
}  // namespace dbfs::testing
