// The versioned-store contract (tests/mvcc/store_contract.h) on LocalStore.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>

#include "mvcc/local_store.h"
#include "mvcc/superblock.h"
#include "tests/mvcc/store_contract.h"

namespace dbfs::mvcc {
namespace {

// LMDB + WAL in a fresh volume directory.
class LocalStoreFactory {
 public:
  static constexpr const char* kName = "LocalStore";

  LocalStoreFactory() {
    char tmpl[] = "/tmp/dbfs-contract-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      ADD_FAILURE() << "mkdtemp";
      return;
    }
    dir_ = tmpl;
    EXPECT_EQ(mkdir((dir_ + "/meta").c_str(), 0700), 0);
    EXPECT_EQ(mkdir((dir_ + "/wal").c_str(), 0700), 0);
    EXPECT_TRUE(WriteSuperblock(dir_, NewSuperblock()).ok());
  }
  ~LocalStoreFactory() {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Result<std::unique_ptr<Store>> Open() {
    StoreOptions o;
    o.flush_interval_ms = 50;  // flushes (and GC) run while the tests do
    DBFS_ASSIGN_OR_RETURN(auto s, LocalStore::Open(dir_, o));
    return std::unique_ptr<Store>(std::move(s));
  }

 private:
  std::string dir_;
};

INSTANTIATE_TYPED_TEST_SUITE_P(Local, StoreContract, LocalStoreFactory, FactoryNames);

}  // namespace
}  // namespace dbfs::mvcc
