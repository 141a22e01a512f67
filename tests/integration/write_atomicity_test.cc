// write(2) atomicity at its documented limit (README, docs/ARCHITECTURE.md
// §7): one write(2) through a write-only descriptor (or a read-write one of
// a new or truncated file) is one transaction when it is at most 1 MiB and
// its buffer spans at most 256 memory pages: the kernel sends a direct write
// in requests of at most max_write (1 MiB) bytes and max_pages (256, the
// kernel's limit) pages. So up to 1 MiB from a page-aligned buffer, and up to
// 1 MiB - 4 KiB from any buffer (malloc's 1 MiB buffers are not
// page-aligned). Tested at those limits and one byte past them: the commits
// a write causes (the daemon's `commits` counter), a concurrent reader that
// must never see part of a write at the limit, and SIGKILL of the daemon
// while such a write is in flight. Past the limit the write becomes two
// requests, two transactions (asserted, so the docs stay true).
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

constexpr size_t kMiB = size_t{1} << 20;

// Every byte of generation g's content is g's mark, so any mix of two
// generations is visible in one comparison.
char Mark(uint64_t g) { return static_cast<char>('A' + g % 26); }

// A page-aligned buffer (O_DIRECT reads need one), freed on scope exit.
struct Buffer {
  explicit Buffer(size_t n) {
    if (posix_memalign(&p, 4096, n + 4096) != 0) p = nullptr;
  }
  ~Buffer() { free(p); }
  char* data() const { return static_cast<char*>(p); }
  void* p = nullptr;
};

int64_t MonotonicNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

class WriteAtomicity : public MountTest {
 protected:
  void SetUp() override {
    MountTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    if (vol_->plain()) GTEST_SKIP() << "needs the daemon's counters";
  }

  uint64_t Commits() {
    std::string err;
    auto s = DaemonStats(vol_->mountpoint(), &err);
    EXPECT_TRUE(err.empty()) << err;
    EXPECT_TRUE(s.count("commits")) << "dbfs stats lacks commits";
    return s["commits"];
  }

  // Whole file `rel`, checked to be `size` bytes all of one mark; returns
  // that mark, or 0 (with a failure recorded) if it is not.
  char UniformMark(const std::string& rel, size_t size) {
    const std::string got = ReadFile(path(rel));
    EXPECT_EQ(got.size(), size);
    if (got.size() != size || got.empty()) return 0;
    const size_t bad = got.find_first_not_of(got[0]);
    EXPECT_EQ(bad, std::string::npos) << rel << " mixes '" << got[0] << "' with '"
                                      << (bad == std::string::npos ? ' ' : got[bad])
                                      << "' at byte " << bad << ": part of a write";
    return bad == std::string::npos ? got[0] : 0;
  }

  void ReaderRace(size_t misalign);
};

// The largest write(2) that is one request from a buffer starting
// `misalign` bytes into a page: 256 pages and 1 MiB at most.
size_t Limit(size_t misalign) { return std::min(kMiB, 256 * size_t{4096} - misalign % 4096); }

// How many transactions one write(2) becomes at the limit and one byte past
// it, for a page-aligned and a malloc-like (16 bytes past a page) user
// buffer, at file offsets 0 and 100 (the file offset does not matter for
// direct I/O), through a write-only descriptor and a read-write one of a new
// file.
TEST_F(WriteAtomicity, WriteAtTheLimitIsOneCommitOneBytePastIsTwo) {
  Buffer buf(kMiB + 64);
  ASSERT_NE(buf.data(), nullptr);
  for (const int flags : {O_WRONLY, O_RDWR}) {
    for (const size_t misalign : {size_t{0}, size_t{16}}) {
      for (const off_t off : {off_t{0}, off_t{100}}) {
        for (const size_t size : {Limit(misalign), Limit(misalign) + 1}) {
          SCOPED_TRACE(std::string(flags == O_WRONLY ? "O_WRONLY" : "O_RDWR") + ", buffer +" +
                       std::to_string(misalign) + ", offset " + std::to_string(off) + ", " +
                       std::to_string(size) + " bytes");
          const std::string f = path("c" + std::to_string(flags) + "_" +
                                     std::to_string(misalign) + "_" + std::to_string(off) + "_" +
                                     std::to_string(size));
          const int fd = open(f.c_str(), flags | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
          ASSERT_GE(fd, 0) << strerror(errno);
          memset(buf.data() + misalign, 'w', size);
          const uint64_t before = Commits();
          const ssize_t n = pwrite(fd, buf.data() + misalign, size, off);
          const uint64_t after = Commits();
          ASSERT_EQ(n, static_cast<ssize_t>(size)) << strerror(errno);
          // At the limit: one request, one transaction. Past it: the
          // kernel cuts at 1 MiB or 256 pages, one transaction per request.
          EXPECT_EQ(after - before, size <= Limit(misalign) ? 1u : 2u);
          EXPECT_EQ(close(fd), 0);
        }
      }
    }
  }
}

// A reader never sees part of a write at the limit (1 MiB from a
// page-aligned buffer, 1 MiB - 4 KiB from a malloc-like one): the writer
// rewrites the whole file with one write(2) per generation; the reader reads
// it with one O_DIRECT read (one READ request). Each read is counted as overlapping a
// write when a write was in progress at its start or one began before its
// end (a sequence number the writer makes odd while in write(2)); the run
// goes on until at least kMinOverlaps reads overlapped, so the window was
// shown to open (bounded by a number of writes, not by time).
TEST_F(WriteAtomicity, ConcurrentReaderNeverSeesPartOfAWriteAtTheLimit) {
  for (const size_t misalign : {size_t{0}, size_t{16}}) {
    SCOPED_TRACE("writer buffer +" + std::to_string(misalign));
    ReaderRace(misalign);
  }
}

void WriteAtomicity::ReaderRace(size_t misalign) {
  constexpr int kMinOverlaps = 50;
  constexpr uint64_t kMaxWrites = 20000;
  const size_t size = Limit(misalign);
  const std::string f = path("shared" + std::to_string(misalign));
  {
    const std::string init(size, Mark(0));
    ASSERT_TRUE(WriteFile(f, init));
  }
  std::atomic<uint64_t> seq{0};  // odd while the writer is inside write(2)
  std::atomic<bool> stop{false};
  std::atomic<int> overlapped{0}, torn{0}, reads{0};
  std::string writer_error, reader_error;
  std::thread writer([&] {
    const int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      writer_error = std::string("open: ") + strerror(errno);
      stop = true;
      return;
    }
    Buffer buf(kMiB);
    char* data = buf.data() + misalign;
    for (uint64_t g = 1; g <= kMaxWrites && !stop; ++g) {
      memset(data, Mark(g), size);
      seq.fetch_add(1);
      const ssize_t n = pwrite(fd, data, size, 0);
      seq.fetch_add(1);
      if (n != static_cast<ssize_t>(size)) {
        writer_error = "write: " + std::string(n < 0 ? strerror(errno) : "short");
        break;
      }
    }
    close(fd);
    stop = true;
  });
  std::thread reader([&] {
    const int fd = open(f.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
      reader_error = std::string("open O_DIRECT: ") + strerror(errno);
      stop = true;
      return;
    }
    Buffer buf(kMiB);
    while (!stop) {
      const uint64_t s0 = seq.load();
      const ssize_t n = pread(fd, buf.data(), kMiB, 0);
      const uint64_t s1 = seq.load();
      if (n != static_cast<ssize_t>(size)) {
        reader_error = "read: " + std::string(n < 0 ? strerror(errno) : "short");
        break;
      }
      reads.fetch_add(1);
      if ((s0 & 1) || s1 != s0) overlapped.fetch_add(1);
      const std::string_view got(buf.data(), size);
      const size_t bad = got.find_first_not_of(got[0]);
      if (bad != std::string_view::npos && torn.fetch_add(1) < 3) {
        ADD_FAILURE() << "a read saw part of a write: '" << got[0] << "' up to byte " << bad
                      << ", then '" << got[bad] << "'";
      }
      if (overlapped.load() >= kMinOverlaps) stop = true;
    }
    close(fd);
    stop = true;
  });
  writer.join();
  reader.join();
  EXPECT_TRUE(writer_error.empty()) << writer_error;
  EXPECT_TRUE(reader_error.empty()) << reader_error;
  std::cout << reads.load() << " reads, " << overlapped.load() << " overlapped a write, "
            << torn.load() << " torn\n";
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GE(overlapped.load(), kMinOverlaps)
      << "too few reads overlapped a write for the test to mean anything";
}

// SIGKILL of the daemon while a 1 MiB write (page-aligned buffer) is in flight: after the remount
// the file holds one whole generation, the last acknowledged one or the one
// in flight. Repeated until a kill landed while a write(2) was in progress
// (the writer notes when each write began; the failing one began before the
// kill), at most kRounds times.
TEST_F(WriteAtomicity, KillDuringAOneMiBWriteLeavesOneWholeGeneration) {
  constexpr int kRounds = 10;
  const std::string rel = "killed";
  int in_flight_kills = 0;
  for (int round = 0; round < kRounds && in_flight_kills < 2; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    const std::string f = path(rel);
    {
      const std::string init(kMiB, Mark(0));
      ASSERT_TRUE(WriteFile(f, init));
    }
    std::atomic<uint64_t> acked{0};
    std::atomic<int64_t> failed_started_ns{-1};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      const int fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
      if (fd < 0) return;
      Buffer data(kMiB);  // page-aligned: 1 MiB is at the limit
      for (uint64_t g = 1; !stop; ++g) {
        memset(data.data(), Mark(g), kMiB);
        const int64_t start = MonotonicNs();
        if (pwrite(fd, data.data(), kMiB, 0) != static_cast<ssize_t>(kMiB)) {
          failed_started_ns = start;
          break;
        }
        acked = g;
      }
      close(fd);
    });
    // Let a few writes complete first (bounded), then kill.
    const uint64_t want = 3 + static_cast<uint64_t>(round);
    const bool went = WaitFor([&] { return acked.load() >= want; }, std::chrono::seconds(60));
    const int64_t kill_ns = MonotonicNs();
    ASSERT_TRUE(vol_->Kill9());
    stop = true;
    writer.join();
    ASSERT_TRUE(went) << "the writer did not complete " << want << " writes";
    const uint64_t last = acked.load();
    if (failed_started_ns.load() >= 0 && failed_started_ns.load() < kill_ns) ++in_flight_kills;
    ASSERT_TRUE(vol_->Mount());
    const char m = UniformMark(rel, kMiB);
    EXPECT_TRUE(m == Mark(last) || m == Mark(last + 1))
        << "after the kill the file holds '" << m << "'; last acknowledged '" << Mark(last)
        << "', in flight '" << Mark(last + 1) << "'";
  }
  EXPECT_GE(in_flight_kills, 1) << "no kill landed while a write(2) was in flight";
}

}  // namespace
}  // namespace dbfs::testing
