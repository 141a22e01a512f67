// libdbfs (libdbfs/dbfs.h, dbfs.hpp) against a real mount: a transaction
// binds the calling process and its children, commits and aborts, conflicts
// come back as DBFS_ECONFLICT (dbfs::Conflict) with the path, the retry
// helper runs a lost transaction again, and every error a program acts on
// has its code.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "libdbfs/dbfs.h"
#include "libdbfs/dbfs.hpp"
#include "tests/integration/mount_fixture.h"

namespace {

using dbfs::testing::MountedVolume;

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::trunc) << data;
}

bool Exists(const std::string& path) { return access(path.c_str(), F_OK) == 0; }

// A process outside any transaction of ours: forked before nothing is bound
// would still be our descendant, so it is reparented (double fork): its
// ancestors never include the bound test process. It writes `data` to `path`
// when told through the returned pipe, and exits; Finish() waits for that.
class OutsideWriter {
 public:
  OutsideWriter(const std::string& path, const std::string& data) {
    int go[2], done[2];
    if (pipe(go) != 0 || pipe(done) != 0) std::abort();
    const pid_t mid = fork();
    if (mid == 0) {
      if (fork() == 0) {
        close(go[1]);
        close(done[0]);
        char b;
        if (read(go[0], &b, 1) == 1) {
          const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
          const bool ok = fd >= 0 && write(fd, data.data(), data.size()) ==
                                         static_cast<ssize_t>(data.size());
          if (fd >= 0) close(fd);
          b = ok ? 'y' : 'n';
          [[maybe_unused]] ssize_t n = write(done[1], &b, 1);
        }
        _exit(0);
      }
      _exit(0);
    }
    waitpid(mid, nullptr, 0);
    close(go[0]);
    close(done[1]);
    go_ = go[1];
    done_ = done[0];
  }
  ~OutsideWriter() {
    close(go_);
    close(done_);
  }
  // Lets it write; true once the write is done.
  bool Finish() {
    char b = 'g';
    if (write(go_, &b, 1) != 1) return false;
    return read(done_, &b, 1) == 1 && b == 'y';
  }

 private:
  int go_ = -1;
  int done_ = -1;
};

class LibDbfs : public ::testing::Test {
 protected:
  void SetUp() override {
    if (dbfs::testing::PlainDirMode()) GTEST_SKIP() << "needs a DBFS mount";
    std::string error;
    vol_ = MountedVolume::Create(MountedVolume::DefaultOptions(), &error);
    ASSERT_TRUE(vol_) << error;
    mnt_ = vol_->mountpoint();
  }
  std::unique_ptr<MountedVolume> vol_;
  std::string mnt_;
};

TEST_F(LibDbfs, CommitMakesTheProcessAndChildrensChangesVisibleAtOnce) {
  Write(mnt_ + "/f", "old");
  dbfs_tx* tx = nullptr;
  ASSERT_EQ(dbfs_tx_begin(mnt_.c_str(), 0, &tx), DBFS_OK);
  EXPECT_STREQ(dbfs_tx_mount(tx), mnt_.c_str());
  EXPECT_NE(std::string(dbfs_tx_id(tx)), "");
  Write(mnt_ + "/f", "new");
  // A child started now is inside the transaction too.
  ASSERT_EQ(std::system(("echo child > " + mnt_ + "/by-child").c_str()), 0);
  char* status = nullptr;
  ASSERT_EQ(dbfs_tx_status(mnt_.c_str(), &status), DBFS_OK);
  EXPECT_NE(std::string(status).find("tx " + std::string(dbfs_tx_id(tx)) + " pid " +
                                     std::to_string(getpid())),
            std::string::npos)
      << status;
  std::free(status);
  // One transaction per process tree.
  dbfs_tx* second = nullptr;
  EXPECT_EQ(dbfs_tx_begin(mnt_.c_str(), 0, &second), DBFS_EBUSY);
  ASSERT_EQ(dbfs_tx_commit(tx, DBFS_TX_DURABLE), DBFS_OK) << dbfs_tx_detail(tx);
  EXPECT_GT(std::strtoull(dbfs_tx_detail(tx), nullptr, 10), 0u) << "the CSN: " << dbfs_tx_detail(tx);
  dbfs_tx_free(tx);
  EXPECT_EQ(Read(mnt_ + "/f"), "new");
  EXPECT_EQ(Read(mnt_ + "/by-child"), "child\n");
}

TEST_F(LibDbfs, AbortDropsEverythingTheTreeDid) {
  dbfs_tx* tx = nullptr;
  ASSERT_EQ(dbfs_tx_begin(mnt_.c_str(), DBFS_TX_SNAPSHOT, &tx), DBFS_OK);
  Write(mnt_ + "/mine", "x");
  ASSERT_EQ(std::system(("mkdir " + mnt_ + "/dir && echo y > " + mnt_ + "/dir/z").c_str()), 0);
  EXPECT_TRUE(Exists(mnt_ + "/dir/z"));  // read-your-writes
  ASSERT_EQ(dbfs_tx_abort(tx), DBFS_OK);
  // The handle's transaction is over.
  EXPECT_EQ(dbfs_tx_commit(tx, 0), DBFS_ENOTX);
  dbfs_tx_free(tx);
  EXPECT_FALSE(Exists(mnt_ + "/mine"));
  EXPECT_FALSE(Exists(mnt_ + "/dir"));
}

TEST_F(LibDbfs, ALostConflictIsDbfsEconflictWithThePath) {
  Write(mnt_ + "/balance", "100");
  OutsideWriter other(mnt_ + "/balance", "50");
  dbfs_tx* tx = nullptr;
  ASSERT_EQ(dbfs_tx_begin(mnt_.c_str(), 0, &tx), DBFS_OK);
  EXPECT_EQ(Read(mnt_ + "/balance"), "100");
  Write(mnt_ + "/log", "read 100");
  ASSERT_TRUE(other.Finish());  // a commit outside changes what we read
  EXPECT_EQ(dbfs_tx_commit(tx, 0), DBFS_ECONFLICT);
  EXPECT_STREQ(dbfs_tx_detail(tx), "/balance");
  dbfs_tx_free(tx);
  EXPECT_FALSE(Exists(mnt_ + "/log"));  // nothing of the loser remains
  EXPECT_EQ(Read(mnt_ + "/balance"), "50");
}

TEST_F(LibDbfs, ErrorsAProgramCanActOn) {
  dbfs_tx* tx = nullptr;
  EXPECT_EQ(dbfs_tx_begin("/", 0, &tx), DBFS_ENOTDBFS);
  EXPECT_EQ(dbfs_tx_begin(mnt_.c_str(), 0x100, &tx), DBFS_EINVAL);
  EXPECT_EQ(dbfs_tx_begin("/no/such/dir", 0, &tx), DBFS_ESYSTEM);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(dbfs_tx_open(mnt_.c_str(), "not-a-number", &tx), DBFS_EINVAL);
  ASSERT_EQ(dbfs_tx_open(mnt_.c_str(), "987654321", &tx), DBFS_OK);
  EXPECT_EQ(dbfs_tx_commit(tx, 0), DBFS_ENOTX);
  EXPECT_EQ(dbfs_tx_abort(tx), DBFS_ENOTX);
  dbfs_tx_free(tx);
  // Another user's process cannot be bound by a non-root caller: as root we
  // may, so check only that a pid that does not exist is refused.
  EXPECT_EQ(dbfs_tx_begin_pid(mnt_.c_str(), 0x7ffffff0, 0, nullptr, &tx), DBFS_ENOTX);
  EXPECT_STRNE(dbfs_strerror(DBFS_ECONFLICT), dbfs_strerror(DBFS_EDEADLOCK));
  char* mount = nullptr;
  ASSERT_EQ(dbfs_find_mount((mnt_ + "/.").c_str(), &mount), DBFS_OK);
  EXPECT_STREQ(mount, mnt_.c_str());
  std::free(mount);
}

TEST_F(LibDbfs, CxxWrapperRetriesALostTransactionAndAbortsOnException) {
  Write(mnt_ + "/counter", "0");
  int attempts = 0;
  {
    OutsideWriter other(mnt_ + "/counter", "10");
    dbfs::RunTransaction(mnt_, [&] {
      ++attempts;
      const int n = std::stoi(Read(mnt_ + "/counter"));
      Write(mnt_ + "/counter", std::to_string(n + 1));
      if (attempts == 1) {
        ASSERT_TRUE(other.Finish());  // lose the first attempt
      }
    });
  }
  EXPECT_EQ(attempts, 2);
  EXPECT_EQ(Read(mnt_ + "/counter"), "11");  // the retry saw the outside write

  // An exception leaves the block: the transaction is rolled back.
  EXPECT_THROW(
      {
        dbfs::Transaction tx(mnt_);
        Write(mnt_ + "/counter", "999");
        throw std::runtime_error("give up");
      },
      std::runtime_error);
  EXPECT_EQ(Read(mnt_ + "/counter"), "11");

  // Every attempt lost: the last Conflict propagates, with its code.
  try {
    dbfs::RunTransaction(
        mnt_,
        [&] {
          OutsideWriter spoiler(mnt_ + "/counter", "0");
          Read(mnt_ + "/counter");
          Write(mnt_ + "/other", "x");
          ASSERT_TRUE(spoiler.Finish());
        },
        2);
    ADD_FAILURE() << "no conflict";
  } catch (const dbfs::Conflict& c) {
    EXPECT_EQ(c.code(), DBFS_ECONFLICT);
    EXPECT_TRUE(c.retryable());
  }
  EXPECT_THROW(dbfs::Transaction("/"), dbfs::Error);
}

}  // namespace
