// Shared mappings inside an explicit transaction: the kernel writes their
// dirty pages back on nobody's behalf, so the daemon gives those writes to the
// transaction the mapped descriptor was opened in (docs/ARCHITECTURE.md §7).
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "tests/integration/mount_fixture.h"
#include "tests/integration/posix_util.h"

namespace dbfs::testing {
namespace {

constexpr size_t kSize = 3 * 4096;

class TxMmap : public MountTest {
 protected:
  void SetUp() override {
    if (PlainDirMode()) GTEST_SKIP() << "transactions need a DBFS mount";
    MountTest::SetUp();
  }

 public:
  // One control command (a getxattr of the mount's root); "" on error.
  std::string Control(const std::string& cmd) {
    std::string reply(4096, '\0');
    ssize_t n = getxattr(path().c_str(), cmd.c_str(), reply.data(), reply.size());
    if (n < 0) {
      ADD_FAILURE() << cmd << ": " << ErrName(errno);
      return "";
    }
    reply.resize(static_cast<size_t>(n));
    return reply;
  }
};

// A child that maps `file` shared, stores "TX" at two places, msyncs when
// asked to, and reports back; it unmaps and exits when told to go on. Runs
// inside the transaction bound to it before it is released.
class MappingChild {
 public:
  MappingChild(const std::string& file, bool msync_it) {
    if (pipe(go_) != 0 || pipe(done_) != 0) return;
    pid_ = fork();
    if (pid_ != 0) return;
    char c;
    if (read(go_[0], &c, 1) != 1) _exit(10);
    int fd = open(file.c_str(), O_RDWR);
    if (fd < 0) _exit(11);
    void* p = mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) _exit(12);
    memcpy(static_cast<char*>(p) + 100, "TX", 2);
    memcpy(static_cast<char*>(p) + 5000, "TX", 2);
    if (msync_it && msync(p, kSize, MS_SYNC) != 0) _exit(13);
    if (write(done_[1], "d", 1) != 1) _exit(14);
    if (read(go_[0], &c, 1) != 1) _exit(15);
    munmap(p, kSize);  // without touching the pages again
    close(fd);
    _exit(0);
  }
  ~MappingChild() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      int st;
      WaitPid(pid_, std::chrono::seconds(10), &st);
    }
    for (int fd : {go_[0], go_[1], done_[0], done_[1]}) close(fd);
  }
  pid_t pid() const { return pid_; }
  bool Go() { return write(go_[1], "g", 1) == 1; }
  bool WaitStored() {
    char c;
    return read(done_[0], &c, 1) == 1;
  }
  // Lets it unmap and exit; true if it exited 0.
  bool Finish() {
    int st = -1;
    if (!Go() || !WaitPid(pid_, std::chrono::seconds(30), &st)) return false;
    pid_ = -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }

 private:
  int go_[2] = {-1, -1}, done_[2] = {-1, -1};
  pid_t pid_ = -1;
};

std::string Stored(std::string data) {
  data.replace(100, 2, "TX");
  data.replace(5000, 2, "TX");
  return data;
}

// Binds a transaction to `child` and lets it store; returns the id ("" on
// failure, reported).
std::string BeginAndStore(TxMmap* t, MappingChild* child) {
  if (child->pid() <= 0) {
    ADD_FAILURE() << "fork failed";
    return "";
  }
  std::string id = t->Control("dbfs.tx.begin:" + std::to_string(child->pid()) + ":serializable");
  if (id.empty() || !child->Go() || !child->WaitStored()) {
    ADD_FAILURE() << "the child did not store inside a transaction";
    return "";
  }
  return id;
}

TEST_F(TxMmap, SharedMappingWritesBelongToTheTransaction) {
  const std::string f = path("f"), data = Pattern(kSize, 7);
  ASSERT_TRUE(WriteFile(f, data));
  MappingChild child(f, /*msync_it=*/true);
  const std::string id = BeginAndStore(this, &child);
  ASSERT_FALSE(id.empty());
  // The stores reached the daemon (msync), inside the transaction: nobody
  // else sees them yet.
  EXPECT_TRUE(ReadFile(f) == data) << "a transaction's mapped stores are visible before commit";
  ASSERT_TRUE(child.Finish());
  EXPECT_TRUE(ReadFile(f) == data);
  EXPECT_EQ("ok", Control("dbfs.tx.commit:" + id).substr(0, 2));
  EXPECT_TRUE(ReadFile(f) == Stored(data)) << "mapped stores lost at commit";
}

TEST_F(TxMmap, DirtyMappedPagesOfAnAbortedTransactionAreDropped) {
  const std::string f = path("f"), data = Pattern(kSize, 8);
  ASSERT_TRUE(WriteFile(f, data));
  MappingChild child(f, /*msync_it=*/false);
  const std::string id = BeginAndStore(this, &child);
  ASSERT_FALSE(id.empty());
  // The pages are dirty in the kernel; the abort makes it write them back
  // (and drop them), then the child unmaps and closes.
  EXPECT_EQ("ok", Control("dbfs.tx.abort:" + id).substr(0, 2));
  EXPECT_TRUE(ReadFile(f) == data) << "an aborted transaction's mapped stores were kept";
  ASSERT_TRUE(child.Finish());
  EXPECT_TRUE(ReadFile(f) == data) << "an aborted transaction's mapped stores were kept";
  ASSERT_TRUE(vol_->Remount());
  EXPECT_TRUE(ReadFile(f) == data) << "an aborted transaction's mapped stores were kept";
}

// Without a transaction, a read-write descriptor of a new file (direct I/O)
// and a shared mapping of the same file see each other's writes.
TEST_F(TxMmap, ReadWriteDescriptorAndSharedMappingStayCoherent) {
  const std::string f = path("f"), data = Pattern(kSize, 9);
  Fd fd(open(f.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0644));
  ASSERT_SYS(fd.get());
  ASSERT_TRUE(PWriteAll(fd.get(), data, 0));
  char* p = static_cast<char*>(mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
  ASSERT_NE(MAP_FAILED, static_cast<void*>(p)) << ErrName(errno);
  EXPECT_EQ(0, memcmp(p, data.data(), kSize));
  // A write(2) through the descriptor is seen by the mapping...
  ASSERT_EQ(3, pwrite(fd, "abc", 3, 4097));
  EXPECT_EQ(0, memcmp(p + 4097, "abc", 3)) << "the mapping kept a stale page";
  // ...and a store into the mapping by read(2), without msync.
  memcpy(p + 9000, "xyz", 3);
  char buf[3];
  ASSERT_EQ(3, pread(fd, buf, 3, 9000));
  EXPECT_EQ(0, memcmp(buf, "xyz", 3)) << "read(2) missed a dirty mapped page";
  munmap(p, kSize);
}

}  // namespace
}  // namespace dbfs::testing
