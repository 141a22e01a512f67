#include "kvstore/env.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <limits>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace dbfs::kv {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

std::string U64Key(uint64_t v) { return KeyBuilder().U64(v).Take(); }

// A value whose every byte depends on `i`, so a wrong or torn value is caught.
std::string ValueFor(uint64_t i, size_t n) {
  std::string v(n, '\0');
  uint64_t x = i * 0x9e3779b97f4a7c15ull + 1;
  for (size_t j = 0; j < n; ++j) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    v[j] = static_cast<char>(x);
  }
  return v;
}

// Spins (yielding) until `pred` holds; fails the test after a generous
// deadline instead of hanging. Not a sleep: it waits for a state change.
template <typename Pred>
bool WaitFor(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::yield();
  }
  return true;
}

class EnvTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/dbfs_kv_test_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    env_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Opens dir_ into env_ and opens table "t" into t_.
  void OpenEnv(EnvOptions opts = {}) {
    env_.reset();
    auto r = Env::Open(dir_, opts);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    env_ = std::move(r).value();
    auto t = env_->OpenTable("t");
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    t_ = *t;
  }

  // Batch b writes records [b*per_batch, (b+1)*per_batch) and sets
  // `progress` to b+1, in one write transaction each.
  void WriteProgressBatches(const std::string& progress, uint64_t batches, uint64_t per_batch,
                            size_t value_size) {
    for (uint64_t b = 0; b < batches; ++b) {
      Status s = env_->Write([&](WriteTxn& w) -> Status {
        for (uint64_t i = b * per_batch; i < (b + 1) * per_batch; ++i) {
          DBFS_RETURN_IF_ERROR(w.Put(t_, U64Key(i), ValueFor(i, value_size)));
        }
        return w.Put(t_, progress, U64Key(b + 1));
      });
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
  }

  // The batch count `progress` holds in `r`'s snapshot; nullopt if it
  // cannot be read or decoded.
  std::optional<uint64_t> ReadProgress(ReadTxn& r, const std::string& progress) {
    auto p = r.Get(t_, progress);
    if (!p.ok() || !p->has_value()) return std::nullopt;
    uint64_t batches = 0;
    KeyReader kr(**p);
    if (!kr.U64(&batches)) return std::nullopt;
    return batches;
  }

  Status Put(Table t, std::string_view k, std::string_view v) {
    return env_->Write([&](WriteTxn& w) { return w.Put(t, k, v); });
  }

  // Reads `k` in a fresh ReadTxn and copies the value out.
  std::optional<std::string> Get(Table t, std::string_view k) {
    auto r = env_->BeginRead();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return std::nullopt;
    auto v = (*r)->Get(t, k);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    if (!v.ok() || !v->has_value()) return std::nullopt;
    return std::string(**v);
  }

  // All keys of `t` in cursor order.
  std::vector<std::string> Keys(Table t) {
    std::vector<std::string> out;
    auto r = env_->BeginRead();
    EXPECT_TRUE(r.ok());
    auto c = (*r)->NewCursor(t);
    EXPECT_TRUE(c.ok());
    auto ok = (*c)->SeekFirst();
    while (ok.ok() && *ok) {
      out.emplace_back((*c)->key());
      ok = (*c)->Next();
    }
    EXPECT_TRUE(ok.ok()) << ok.status().ToString();
    return out;
  }

  // Writes records [first, first+count) of `value_size` bytes in one Write.
  Status WriteRange(uint64_t first, uint64_t count, size_t value_size) {
    return env_->Write([&](WriteTxn& w) -> Status {
      for (uint64_t i = first; i < first + count; ++i) {
        DBFS_RETURN_IF_ERROR(w.Put(t_, U64Key(i), ValueFor(i, value_size)));
      }
      return Status::Ok();
    });
  }

  // Checks that exactly records [0, count) are present with their values.
  void ExpectRange(uint64_t count, size_t value_size) {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok());
    auto c = (*r)->NewCursor(t_);
    ASSERT_TRUE(c.ok());
    auto ok = (*c)->SeekFirst();
    uint64_t i = 0;
    while (ok.ok() && *ok) {
      ASSERT_EQ((*c)->key(), U64Key(i));
      ASSERT_EQ((*c)->value(), ValueFor(i, value_size)) << "record " << i;
      ++i;
      ok = (*c)->Next();
    }
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
    EXPECT_EQ(i, count);
  }

  // Checks that records [0, count) are present with their values; keys
  // after them (not U64 keys) are ignored.
  void ExpectRecords(uint64_t count, size_t value_size) {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok());
    auto c = (*r)->NewCursor(t_);
    ASSERT_TRUE(c.ok());
    auto ok = (*c)->SeekFirst();
    for (uint64_t i = 0; i < count; ++i) {
      ASSERT_TRUE(ok.ok() && *ok) << "record " << i;
      ASSERT_EQ((*c)->key(), U64Key(i));
      ASSERT_EQ((*c)->value(), ValueFor(i, value_size)) << "record " << i;
      ok = (*c)->Next();
    }
    ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  }

  std::string dir_;
  std::unique_ptr<Env> env_;
  Table t_;
};

TEST_F(EnvTest, PutGetDeleteRoundTrip) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "alpha", "one").ok());
  ASSERT_TRUE(Put(t_, "beta", std::string("\0two\0", 5)).ok());
  EXPECT_EQ(Get(t_, "alpha"), "one");
  EXPECT_EQ(Get(t_, "beta"), std::string("\0two\0", 5));
  EXPECT_EQ(Get(t_, "gamma"), std::nullopt);

  ASSERT_TRUE(Put(t_, "alpha", "uno").ok());  // overwrite
  EXPECT_EQ(Get(t_, "alpha"), "uno");

  ASSERT_TRUE(env_->Write([&](WriteTxn& w) { return w.Delete(t_, "alpha"); }).ok());
  EXPECT_EQ(Get(t_, "alpha"), std::nullopt);
  EXPECT_EQ(Get(t_, "beta"), std::string("\0two\0", 5));
}

TEST_F(EnvTest, DeleteMissingKeyIsOk) {
  OpenEnv();
  Status s = env_->Write([&](WriteTxn& w) { return w.Delete(t_, "never-there"); });
  EXPECT_TRUE(s.ok()) << s.ToString();
}

TEST_F(EnvTest, EmptyValueIsPresent) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "").ok());
  EXPECT_EQ(Get(t_, "k"), "");
}

TEST_F(EnvTest, WriteTxnSeesItsOwnChanges) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "old", "1").ok());
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    DBFS_RETURN_IF_ERROR(w.Put(t_, "new", "2"));
    DBFS_ASSIGN_OR_RETURN(auto v, w.Get(t_, "new"));
    EXPECT_EQ(v, std::optional<std::string_view>("2"));
    DBFS_RETURN_IF_ERROR(w.Delete(t_, "old"));
    DBFS_ASSIGN_OR_RETURN(auto gone, w.Get(t_, "old"));
    EXPECT_FALSE(gone.has_value());
    // A reader opened now still sees the last commit.
    EXPECT_EQ(Get(t_, "old"), "1");
    EXPECT_EQ(Get(t_, "new"), std::nullopt);
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(Get(t_, "new"), "2");
  EXPECT_EQ(Get(t_, "old"), std::nullopt);
}

TEST_F(EnvTest, ReadTxnIsASnapshot) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "before").ok());
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(Put(t_, "k", "after").ok());
  auto v = (*r)->Get(t_, "k");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, std::optional<std::string_view>("before"));
  r->reset();
  EXPECT_EQ(Get(t_, "k"), "after");
}

TEST_F(EnvTest, CursorOrdersBigEndianKeysNumerically) {
  OpenEnv();
  std::vector<uint64_t> nums = {0,
                                1,
                                255,
                                256,
                                65536,
                                (1ull << 32) - 1,
                                1ull << 32,
                                (1ull << 32) + 1,
                                1ull << 40,
                                1ull << 63,
                                std::numeric_limits<uint64_t>::max()};
  std::vector<uint64_t> shuffled = nums;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(42));
  ASSERT_TRUE(env_->Write([&](WriteTxn& w) -> Status {
                    for (uint64_t n : shuffled) {
                      DBFS_RETURN_IF_ERROR(w.Put(t_, U64Key(n), std::to_string(n)));
                    }
                    return Status::Ok();
                  })
                  .ok());

  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  auto cr = (*r)->NewCursor(t_);
  ASSERT_TRUE(cr.ok());
  Cursor& c = **cr;
  EXPECT_FALSE(c.Valid());

  // Forward.
  std::vector<uint64_t> seen;
  for (auto ok = c.SeekFirst(); ok.ok() && *ok; ok = c.Next()) {
    uint64_t n = 0;
    KeyReader kr(c.key());
    ASSERT_TRUE(kr.U64(&n));
    EXPECT_EQ(c.value(), std::to_string(n));
    seen.push_back(n);
  }
  EXPECT_EQ(seen, nums);
  EXPECT_FALSE(c.Valid());
  // Next on an unpositioned cursor stays unpositioned.
  auto again = c.Next();
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);

  // Backward.
  seen.clear();
  for (auto ok = c.SeekLast(); ok.ok() && *ok; ok = c.Prev()) {
    uint64_t n = 0;
    KeyReader kr(c.key());
    ASSERT_TRUE(kr.U64(&n));
    seen.push_back(n);
  }
  std::vector<uint64_t> rev(nums.rbegin(), nums.rend());
  EXPECT_EQ(seen, rev);

  // Seek: exact hit, between keys (crossing 2^32), and past the end.
  auto s = c.Seek(U64Key(1ull << 32));
  ASSERT_TRUE(s.ok() && *s);
  EXPECT_EQ(c.key(), U64Key(1ull << 32));
  s = c.Seek(U64Key(257));
  ASSERT_TRUE(s.ok() && *s);
  EXPECT_EQ(c.key(), U64Key(65536));
  s = c.Seek(U64Key((1ull << 32) + 2));
  ASSERT_TRUE(s.ok() && *s);
  EXPECT_EQ(c.key(), U64Key(1ull << 40));
  auto p = c.Prev();
  ASSERT_TRUE(p.ok() && *p);
  EXPECT_EQ(c.key(), U64Key((1ull << 32) + 1));
  s = c.Seek(U64Key(std::numeric_limits<uint64_t>::max()) + std::string(1, '\0'));
  ASSERT_TRUE(s.ok());
  EXPECT_FALSE(*s);
  EXPECT_FALSE(c.Valid());
  // Seek("") is SeekFirst.
  s = c.Seek("");
  ASSERT_TRUE(s.ok() && *s);
  EXPECT_EQ(c.key(), U64Key(0));
  // Prev before the first key.
  p = c.Prev();
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(*p);
  EXPECT_FALSE(c.Valid());
}

TEST_F(EnvTest, CursorPrefixScan) {
  OpenEnv();
  // dirents-like keys: parent(BE64) | name | NUL
  const std::vector<std::pair<uint64_t, std::string>> entries = {
      {1, "a"}, {1, "zz"}, {2, "b"}, {2, "ba"}, {2, "a"}, {(1ull << 32) + 2, "x"}, {3, "c"}};
  ASSERT_TRUE(env_->Write([&](WriteTxn& w) -> Status {
                    for (const auto& [ino, name] : entries) {
                      DBFS_RETURN_IF_ERROR(
                          w.Put(t_, KeyBuilder().U64(ino).Bytes(name).Nul().Take(), name));
                    }
                    return Status::Ok();
                  })
                  .ok());
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  auto c = (*r)->NewCursor(t_);
  ASSERT_TRUE(c.ok());
  const std::string prefix = U64Key(2);
  std::vector<std::string> names;
  for (auto ok = (*c)->Seek(prefix); ok.ok() && *ok && (*c)->key().starts_with(prefix);
       ok = (*c)->Next()) {
    KeyReader kr((*c)->key());
    uint64_t ino = 0;
    std::string_view name;
    ASSERT_TRUE(kr.U64(&ino));
    ASSERT_TRUE(kr.BytesUntilNul(&name));
    ASSERT_TRUE(kr.empty());
    EXPECT_EQ(ino, 2u);
    EXPECT_EQ((*c)->value(), name);
    names.emplace_back(name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"a", "b", "ba"}));
}

TEST_F(EnvTest, CursorOnEmptyTable) {
  OpenEnv();
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  auto c = (*r)->NewCursor(t_);
  ASSERT_TRUE(c.ok());
  for (auto res :
       {(*c)->SeekFirst(), (*c)->SeekLast(), (*c)->Seek("x"), (*c)->Next(), (*c)->Prev()}) {
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    EXPECT_FALSE(*res);
  }
  EXPECT_FALSE((*c)->Valid());
}

TEST_F(EnvTest, CursorDeleteCurrentWhileIterating) {
  OpenEnv();
  ASSERT_TRUE(WriteRange(0, 1000, 100).ok());
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(t_));
    DBFS_ASSIGN_OR_RETURN(bool ok, c->SeekFirst());
    uint64_t expect = 0;
    while (ok) {
      uint64_t n = 0;
      KeyReader kr(c->key());
      EXPECT_TRUE(kr.U64(&n));
      EXPECT_EQ(n, expect);  // DeleteCurrent lands on the successor
      ++expect;
      if (n % 2 == 0) {
        DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
        ok = c->Valid();
      } else {
        DBFS_ASSIGN_OR_RETURN(ok, c->Next());
      }
    }
    EXPECT_EQ(expect, 1000u);
    // Delete the last record: the cursor becomes invalid.
    DBFS_ASSIGN_OR_RETURN(bool last, c->SeekLast());
    EXPECT_TRUE(last);
    EXPECT_EQ(c->key(), U64Key(999));
    DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
    EXPECT_FALSE(c->Valid());
    // DeleteCurrent needs a position.
    EXPECT_EQ(c->DeleteCurrent().code(), Code::kInvalid);
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  std::vector<std::string> want;
  for (uint64_t i = 1; i < 999; i += 2) want.push_back(U64Key(i));
  EXPECT_EQ(Keys(t_), want);
}

TEST_F(EnvTest, CursorDeleteEverything) {
  OpenEnv();
  ASSERT_TRUE(WriteRange(0, 3000, 200).ok());
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(t_));
    DBFS_ASSIGN_OR_RETURN(bool ok, c->SeekFirst());
    int deleted = 0;
    while (ok) {
      DBFS_RETURN_IF_ERROR(c->DeleteCurrent());
      ++deleted;
      ok = c->Valid();
    }
    EXPECT_EQ(deleted, 3000);
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Keys(t_).empty());
}

TEST_F(EnvTest, ReadCursorCannotDelete) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  auto c = (*r)->NewCursor(t_);
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(*(*c)->SeekFirst());
  EXPECT_EQ((*c)->DeleteCurrent().code(), Code::kInvalid);
  EXPECT_EQ((*c)->key(), "k");
}

TEST_F(EnvTest, WriteCursorSeesUncommittedWrites) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "b", "committed").ok());
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    DBFS_RETURN_IF_ERROR(w.Put(t_, "a", "1"));
    DBFS_RETURN_IF_ERROR(w.Put(t_, "c", "3"));
    DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(t_));
    std::vector<std::string> keys;
    DBFS_ASSIGN_OR_RETURN(bool ok, c->SeekFirst());
    while (ok) {
      keys.emplace_back(c->key());
      DBFS_ASSIGN_OR_RETURN(ok, c->Next());
    }
    EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c"}));
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST_F(EnvTest, BodyErrorAbortsEverything) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "keep", "v").ok());
  int runs = 0;
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    ++runs;
    DBFS_RETURN_IF_ERROR(w.Put(t_, "x", "1"));
    DBFS_RETURN_IF_ERROR(w.Put(t_, "y", "2"));
    DBFS_RETURN_IF_ERROR(w.Delete(t_, "keep"));
    DBFS_RETURN_IF_ERROR(w.Clear(t_));
    return Status::Conflict("lost a race");
  });
  EXPECT_EQ(s.code(), Code::kConflict);
  EXPECT_EQ(s.message(), "lost a race");
  EXPECT_EQ(runs, 1);
  EXPECT_EQ(Keys(t_), (std::vector<std::string>{"keep"}));
  EXPECT_EQ(Get(t_, "keep"), "v");
  // The env is still usable.
  ASSERT_TRUE(Put(t_, "after", "ok").ok());
  EXPECT_EQ(Get(t_, "after"), "ok");
}

TEST_F(EnvTest, ReopenPersistsData) {
  OpenEnv();
  auto t2 = env_->OpenTable("second");
  ASSERT_TRUE(t2.ok());
  ASSERT_TRUE(Put(t_, "k1", "v1").ok());
  ASSERT_TRUE(Put(*t2, "k2", "v2").ok());
  env_.reset();

  OpenEnv();
  auto t2b = env_->OpenTable("second");
  ASSERT_TRUE(t2b.ok());
  EXPECT_EQ(Get(t_, "k1"), "v1");
  EXPECT_EQ(Get(*t2b, "k2"), "v2");
  EXPECT_EQ(Get(*t2b, "k1"), std::nullopt);  // tables are separate
}

TEST_F(EnvTest, ReadOnlyEnvReadsButCannotWrite) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  env_.reset();
  struct stat before;
  ASSERT_EQ(::stat((dir_ + "/data.mdb").c_str(), &before), 0);

  EnvOptions ro;
  ro.read_only = true;
  auto r = Env::Open(dir_, ro);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  env_ = std::move(r).value();
  auto t = env_->OpenTable("t");
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(Get(*t, "k"), "v");
  auto missing = env_->OpenTable("no-such-table");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);

  bool ran = false;
  Status s = env_->Write([&](WriteTxn& w) {
    ran = true;
    return w.Put(*t, "k", "changed");
  });
  EXPECT_EQ(s.code(), Code::kReadOnly);
  EXPECT_FALSE(ran);
  EXPECT_EQ(Get(*t, "k"), "v");

  struct stat after;
  ASSERT_EQ(::stat((dir_ + "/data.mdb").c_str(), &after), 0);
  EXPECT_EQ(before.st_size, after.st_size);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
}

TEST_F(EnvTest, ReadOnlyOpenOfEmptyDirFails) {
  EnvOptions ro;
  ro.read_only = true;
  auto r = Env::Open(dir_, ro);
  EXPECT_FALSE(r.ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/data.mdb"));
}

TEST_F(EnvTest, OpenMissingDirectoryFails) {
  auto r = Env::Open(dir_ + "/does/not/exist", EnvOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().ToErrno(), ENOENT) << r.status().ToString();
}

TEST_F(EnvTest, ReopenWithSmallerInitialMapSize) {
  EnvOptions big;
  big.initial_map_size = 64 * kMiB;
  OpenEnv(big);
  ASSERT_TRUE(WriteRange(0, 8000, 2000).ok());  // ~16 MiB of values
  env_.reset();
  const auto file_size = std::filesystem::file_size(dir_ + "/data.mdb");
  ASSERT_GT(file_size, 8 * kMiB);

  EnvOptions small;
  small.initial_map_size = 1 * kMiB;
  OpenEnv(small);
  EXPECT_GE(env_->map_size(), file_size);
  ExpectRange(8000, 2000);
  ASSERT_TRUE(WriteRange(8000, 4000, 2000).ok());
  ExpectRange(12000, 2000);
}

TEST_F(EnvTest, KeyTooLong) {
  OpenEnv();
  const std::string k511(kMaxKeySize, 'a');
  const std::string k512(kMaxKeySize + 1, 'a');
  Status s = Put(t_, k512, "v");
  EXPECT_EQ(s.code(), Code::kInvalid);
  EXPECT_NE(s.message().find("key too long"), std::string::npos) << s.message();
  EXPECT_EQ(Put(t_, "", "v").code(), Code::kInvalid);

  ASSERT_TRUE(Put(t_, k511, "max").ok());
  EXPECT_EQ(Get(t_, k511), "max");
  EXPECT_EQ(Get(t_, k512), std::nullopt);
  EXPECT_EQ(Get(t_, ""), std::nullopt);
  EXPECT_TRUE(env_->Write([&](WriteTxn& w) { return w.Delete(t_, k512); }).ok());

  // Seek with an over-long key: first key >= it.
  const std::string after = std::string(kMaxKeySize - 1, 'a') + "b";
  ASSERT_TRUE(Put(t_, after, "after").ok());
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  auto c = (*r)->NewCursor(t_);
  ASSERT_TRUE(c.ok());
  auto found = (*c)->Seek(k512);  // k511 < k512 < after
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  ASSERT_TRUE(*found);
  EXPECT_EQ((*c)->key(), after);
  found = (*c)->Seek(std::string(kMaxKeySize + 10, 'b'));
  ASSERT_TRUE(found.ok());
  EXPECT_FALSE(*found);
}

TEST_F(EnvTest, ClearDropsOnlyThatTable) {
  OpenEnv();
  auto other = env_->OpenTable("other");
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(WriteRange(0, 500, 50).ok());
  ASSERT_TRUE(Put(*other, "o", "keep").ok());
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    DBFS_ASSIGN_OR_RETURN(auto c, w.NewCursor(t_));
    DBFS_ASSIGN_OR_RETURN(bool ok, c->SeekFirst());
    EXPECT_TRUE(ok);
    DBFS_RETURN_IF_ERROR(w.Clear(t_));
    EXPECT_FALSE(c->Valid());  // its table is gone
    DBFS_ASSIGN_OR_RETURN(ok, c->SeekFirst());
    EXPECT_FALSE(ok);
    DBFS_ASSIGN_OR_RETURN(auto v, w.Get(t_, U64Key(1)));
    EXPECT_FALSE(v.has_value());
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(Keys(t_).empty());
  EXPECT_EQ(Get(*other, "o"), "keep");
  // The cleared table is still usable.
  ASSERT_TRUE(Put(t_, "again", "1").ok());
  EXPECT_EQ(Keys(t_), (std::vector<std::string>{"again"}));
}

TEST_F(EnvTest, TablesAndHandles) {
  EnvOptions opts;
  opts.max_tables = 2;
  OpenEnv(opts);  // opens "t"
  auto again = env_->OpenTable("t");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->dbi, t_.dbi);
  ASSERT_TRUE(env_->OpenTable("u").ok());
  auto third = env_->OpenTable("v");
  EXPECT_EQ(third.status().code(), Code::kInvalid) << third.status().ToString();
  EXPECT_EQ(env_->OpenTable("").status().code(), Code::kInvalid);

  // Table{} was never opened.
  Table bogus;
  EXPECT_EQ(Put(bogus, "k", "v").code(), Code::kInvalid);
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  EXPECT_EQ((*r)->Get(bogus, "k").status().code(), Code::kInvalid);
  EXPECT_EQ((*r)->NewCursor(bogus).status().code(), Code::kInvalid);
}

TEST_F(EnvTest, MapGrowsAcrossManyWrites) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  const uint64_t initial = env_->map_size();
  EXPECT_LE(initial, 2 * kMiB);
  constexpr uint64_t kPerWrite = 512, kWrites = 100, kValue = 1024;  // ~50 MiB of values
  for (uint64_t i = 0; i < kWrites; ++i) {
    Status s = WriteRange(i * kPerWrite, kPerWrite, kValue);
    ASSERT_TRUE(s.ok()) << "write " << i << ": " << s.ToString();
  }
  EXPECT_GT(env_->map_size(), initial);
  EXPECT_GE(env_->map_size(), 50 * kMiB);
  EXPECT_GE(env_->used_bytes(), 50 * kMiB);
  EXPECT_LE(env_->used_bytes(), env_->map_size());
  EXPECT_GE(env_->TEST_map_full_retries(), 1u);
  ExpectRange(kPerWrite * kWrites, kValue);
  env_.reset();
  OpenEnv(opts);
  ExpectRange(kPerWrite * kWrites, kValue);
}

TEST_F(EnvTest, MapGrowsInsideOneBigWrite) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  const uint64_t initial = env_->map_size();
  constexpr uint64_t kCount = 50 * 1024, kValue = 1024;  // ~50 MiB in one txn
  int runs = 0;
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    ++runs;
    // Each run starts from scratch: nothing of an aborted run is visible.
    DBFS_ASSIGN_OR_RETURN(auto first, w.Get(t_, U64Key(0)));
    EXPECT_FALSE(first.has_value()) << "run " << runs;
    for (uint64_t i = 0; i < kCount; ++i) {
      DBFS_RETURN_IF_ERROR(w.Put(t_, U64Key(i), ValueFor(i, kValue)));
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(runs, 1);
  EXPECT_EQ(env_->TEST_map_full_retries(), static_cast<uint64_t>(runs - 1));
  EXPECT_GT(env_->map_size(), initial);
  EXPECT_GE(env_->map_size(), 50 * kMiB);
  ExpectRange(kCount, kValue);
}

// A body that swallows the map-full error still gets rerun: the failed LMDB
// txn must never be committed as if it were complete.
TEST_F(EnvTest, MapFullIgnoredByBodyIsStillRetried) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  constexpr uint64_t kCount = 4096, kValue = 1024;  // 4 MiB
  int runs = 0;
  Status s = env_->Write([&](WriteTxn& w) -> Status {
    ++runs;
    for (uint64_t i = 0; i < kCount; ++i) {
      w.Put(t_, U64Key(i), ValueFor(i, kValue)).IgnoreError();
    }
    return Status::Ok();
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_GT(runs, 1);
  ExpectRange(kCount, kValue);
}

TEST_F(EnvTest, ConcurrentReaderDuringGrowth) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  const std::string kProgress("progress");
  const uint64_t initial = env_->map_size();
  constexpr uint64_t kBatches = 100, kPerBatch = 512, kValue = 1024;  // ~50 MiB
  // Batch b writes records [b*kPerBatch, (b+1)*kPerBatch) and sets progress = b+1.
  ASSERT_TRUE(Put(t_, kProgress, U64Key(0)).ok());

  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::thread reader([&] {
    uint64_t last = 0;
    while (!done.load()) {
      auto r = env_->BeginRead();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      const std::optional<uint64_t> progress = ReadProgress(**r, kProgress);
      ASSERT_TRUE(progress.has_value());
      const uint64_t batches = *progress;
      ASSERT_GE(batches, last);  // snapshots never go back in time
      last = batches;
      // The snapshot holds every record of every committed batch, and no more.
      if (batches > 0) {
        const uint64_t end = batches * kPerBatch;
        auto c = (*r)->NewCursor(t_);
        ASSERT_TRUE(c.ok());
        const uint64_t start = end - kPerBatch;
        auto ok = (*c)->Seek(U64Key(start));
        for (uint64_t i = start; i < end; ++i) {
          ASSERT_TRUE(ok.ok() && *ok) << "record " << i;
          ASSERT_EQ((*c)->key(), U64Key(i));
          ASSERT_EQ((*c)->value(), ValueFor(i, kValue));
          ok = (*c)->Next();
        }
        ASSERT_TRUE(ok.ok());
        EXPECT_EQ((*c)->key(), kProgress);  // BE64 keys < 2^56 start with 0x00 < 'p'
        auto first = (*r)->Get(t_, U64Key(0));
        ASSERT_TRUE(first.ok() && first->has_value());
        ASSERT_EQ(**first, ValueFor(0, kValue));
      }
      reads.fetch_add(1);
    }
  });
  ASSERT_TRUE(WaitFor([&] { return reads.load() > 0; }));

  WriteProgressBatches(kProgress, kBatches, kPerBatch, kValue);
  const uint64_t reads_at_end = reads.load();
  ASSERT_TRUE(WaitFor([&] { return reads.load() > reads_at_end; }));  // sees the final state
  done.store(true);
  reader.join();

  EXPECT_GT(env_->map_size(), initial);
  EXPECT_GE(env_->TEST_map_full_retries(), 1u);
  auto p = Get(t_, kProgress);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(*p, U64Key(kBatches));
}

// A resize waits for open ReadTxns; meanwhile the reading thread may begin
// more ReadTxns (no self-deadlock) and its views stay valid.
TEST_F(EnvTest, ResizeWaitsForOpenReadersWhichMayNest) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  auto side = env_->OpenTable("side");
  ASSERT_TRUE(side.ok());
  ASSERT_TRUE(Put(*side, "canary", "tweet").ok());
  const uint64_t initial = env_->map_size();

  auto r1 = env_->BeginRead();
  ASSERT_TRUE(r1.ok());
  auto v1 = (*r1)->Get(*side, "canary");
  ASSERT_TRUE(v1.ok() && v1->has_value());

  std::atomic<bool> written{false};
  Status write_status;
  std::thread writer([&] {
    write_status = WriteRange(0, 4096, 1024);  // 4 MiB: must grow the map
    written.store(true);
  });
  ASSERT_TRUE(WaitFor([&] { return env_->TEST_resize_waiting(); }));
  EXPECT_FALSE(written.load());
  EXPECT_EQ(env_->map_size(), initial);

  {
    auto r2 = env_->BeginRead();  // nested on this thread while the resize waits
    ASSERT_TRUE(r2.ok()) << r2.status().ToString();
    auto v2 = (*r2)->Get(*side, "canary");
    ASSERT_TRUE(v2.ok() && v2->has_value());
    EXPECT_EQ(**v2, "tweet");
    EXPECT_EQ((*r2)->Get(t_, U64Key(0))->has_value(), false);
  }
  EXPECT_EQ(**v1, "tweet");  // the map has not moved under r1
  EXPECT_FALSE(written.load());
  r1->reset();  // lets the resize proceed

  writer.join();
  ASSERT_TRUE(write_status.ok()) << write_status.ToString();
  EXPECT_GT(env_->map_size(), initial);
  ExpectRange(4096, 1024);
}

// MDB_NOTLS: a ReadTxn may end on another thread than the one that began it.
TEST_F(EnvTest, ReadTxnEndedOnAnotherThread) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  auto r = env_->BeginRead();
  ASSERT_TRUE(r.ok());
  std::unique_ptr<ReadTxn> txn = std::move(r).value();
  std::thread other([&] {
    auto v = txn->Get(t_, "k");
    ASSERT_TRUE(v.ok() && v->has_value());
    EXPECT_EQ(**v, "v");
    txn.reset();
  });
  other.join();
  // The gate was released: a write that must grow the map completes.
  ASSERT_TRUE(WriteRange(0, 4096, 1024).ok());
  EXPECT_GE(env_->TEST_map_full_retries(), 1u);
}

TEST_F(EnvTest, ConcurrentWritersAreSerialized) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "counter", U64Key(0)).ok());
  constexpr int kThreads = 4, kIncrements = 50;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      for (int j = 0; j < kIncrements; ++j) {
        Status s = env_->Write([&](WriteTxn& w) -> Status {
          DBFS_ASSIGN_OR_RETURN(auto v, w.Get(t_, "counter"));
          uint64_t n = 0;
          KeyReader kr(v.value_or(""));
          if (!kr.U64(&n)) return Status::Corruption("bad counter");
          return w.Put(t_, "counter", U64Key(n + 1));
        });
        EXPECT_TRUE(s.ok()) << s.ToString();
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(Get(t_, "counter"), U64Key(kThreads * kIncrements));
}

TEST_F(EnvTest, NestedWriteIsRefused) {
  OpenEnv();
  Status inner;
  Status outer = env_->Write([&](WriteTxn& w) -> Status {
    inner = env_->Write([&](WriteTxn& w2) { return w2.Put(t_, "inner", "1"); });
    return w.Put(t_, "outer", "1");
  });
  ASSERT_TRUE(outer.ok()) << outer.ToString();
  EXPECT_EQ(inner.code(), Code::kInvalid);
  EXPECT_EQ(Get(t_, "outer"), "1");
  EXPECT_EQ(Get(t_, "inner"), std::nullopt);
}

// Callers destroy cursors first; if they do not, nothing breaks.
TEST_F(EnvTest, CursorOutlivingItsTxnIsHarmless) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  std::unique_ptr<Cursor> c;
  {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok());
    auto cr = (*r)->NewCursor(t_);
    ASSERT_TRUE(cr.ok());
    c = std::move(cr).value();
    ASSERT_TRUE(*c->SeekFirst());
  }
  EXPECT_FALSE(c->Valid());
  EXPECT_EQ(c->SeekFirst().status().code(), Code::kInvalid);
  EXPECT_EQ(c->Next().status().code(), Code::kInvalid);
  c.reset();

  std::unique_ptr<Cursor> wc;
  ASSERT_TRUE(env_->Write([&](WriteTxn& w) -> Status {
                    DBFS_ASSIGN_OR_RETURN(wc, w.NewCursor(t_));
                    return Status::Ok();
                  })
                  .ok());
  EXPECT_EQ(wc->SeekFirst().status().code(), Code::kInvalid);
  wc.reset();
  EXPECT_EQ(Get(t_, "k"), "v");
}

TEST_F(EnvTest, UsedBytesTracksCommits) {
  OpenEnv();
  const uint64_t before = env_->used_bytes();
  EXPECT_GT(before, 0u);
  ASSERT_TRUE(WriteRange(0, 2000, 1000).ok());
  EXPECT_GE(env_->used_bytes(), before + 2000 * 1000);
}

// ---------------------------------------------------------------------------
// ReadTxn reuse (mdb_txn_reset / mdb_txn_renew through Env's pool)

// An ended ReadTxn is renewed by the next BeginRead, and the renewed one is a
// fresh snapshot: it sees commits made after its previous use (including a
// table created meanwhile and a deletion), while a ReadTxn still open keeps
// its older snapshot.
TEST_F(EnvTest, RenewedReadTxnSeesLaterCommits) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "v1").ok());
  ASSERT_TRUE(Put(t_, "gone", "soon").ok());
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 0u);
  EXPECT_EQ(Get(t_, "k"), "v1");
  ASSERT_EQ(env_->TEST_pooled_read_txns(), 1u);  // parked, not aborted
  const uint64_t begun = env_->TEST_read_txns_begun();
  EXPECT_EQ(begun, 1u);

  ASSERT_TRUE(Put(t_, "k", "v2").ok());
  ASSERT_TRUE(Put(t_, "new", "n").ok());
  ASSERT_TRUE(env_->Write([&](WriteTxn& w) { return w.Delete(t_, "gone"); }).ok());
  auto late = env_->OpenTable("late");  // a table created while the txn was pooled
  ASSERT_TRUE(late.ok());
  ASSERT_TRUE(Put(*late, "x", "y").ok());

  auto r2 = env_->BeginRead();
  ASSERT_TRUE(r2.ok()) << r2.status().ToString();
  EXPECT_EQ(env_->TEST_read_txns_begun(), begun);  // renewed, not begun
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 0u);
  auto v = (*r2)->Get(t_, "k");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  ASSERT_TRUE(v->has_value());
  EXPECT_EQ(**v, "v2");
  EXPECT_TRUE((*r2)->Get(t_, "new")->has_value());
  EXPECT_FALSE((*r2)->Get(t_, "gone")->has_value());
  auto lv = (*r2)->Get(*late, "x");
  ASSERT_TRUE(lv.ok()) << lv.status().ToString();
  ASSERT_TRUE(lv->has_value());
  EXPECT_EQ(**lv, "y");

  // r2 stays open (its snapshot must not move); a second reader is begun
  // fresh (the pool is empty) and sees v3.
  ASSERT_TRUE(Put(t_, "k", "v3").ok());
  EXPECT_EQ(Get(t_, "k"), "v3");
  EXPECT_EQ(env_->TEST_read_txns_begun(), begun + 1);
  EXPECT_EQ(**(*r2)->Get(t_, "k"), "v2");
  r2->reset();
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 2u);

  // Many more begin/end cycles: all renewed, each sees the latest commit.
  for (int i = 0; i < 100; ++i) {
    const std::string want = "round" + std::to_string(i);
    ASSERT_TRUE(Put(t_, "k", want).ok());
    ASSERT_EQ(Get(t_, "k"), want);
  }
  EXPECT_EQ(env_->TEST_read_txns_begun(), begun + 1);
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), 2);  // the two pooled handles
}

// A pooled handle is reset: it holds a reader slot but no snapshot, so it
// does not stop LMDB from reusing the pages that later commits free. (A
// handle parked without mdb_txn_reset would pin them, like an open ReadTxn.)
TEST_F(EnvTest, PooledReadTxnDoesNotPinOldPages) {
  OpenEnv();
  constexpr uint64_t kKeys = 16, kValue = 64 * 1024, kRounds = 40;  // 1 MiB live
  auto rewrite_all = [&](uint64_t round) {
    for (uint64_t r = 0; r < kRounds; ++r) {
      ASSERT_TRUE(WriteRange(0, kKeys, kValue + (round + r) % 7).ok());
    }
  };
  ASSERT_TRUE(WriteRange(0, kKeys, kValue).ok());
  EXPECT_TRUE(Get(t_, U64Key(0)).has_value());
  ASSERT_EQ(env_->TEST_pooled_read_txns(), 1u);
  const uint64_t before = env_->used_bytes();
  rewrite_all(0);
  const uint64_t pooled_growth = env_->used_bytes() - before;
  EXPECT_LT(pooled_growth, 8 * kMiB) << "a pooled ReadTxn kept its snapshot";

  // Control: the same rewrites under an open ReadTxn do pin the old pages,
  // so the bound above can fail.
  auto held = env_->BeginRead();
  ASSERT_TRUE(held.ok());
  const uint64_t before_held = env_->used_bytes();
  rewrite_all(1);
  EXPECT_GT(env_->used_bytes() - before_held, 20 * kMiB);
}

// Readers on many threads begin and end ReadTxns (some ended on another
// thread than the one that began them) while a writer commits: every
// snapshot is consistent, never older than a commit that finished before
// BeginRead, and the handles are reused rather than begun anew.
TEST_F(EnvTest, ConcurrentReadersReuseTxnsAcrossThreads) {
  OpenEnv();
  ASSERT_TRUE(env_->Write([&](WriteTxn& w) -> Status {
                    DBFS_RETURN_IF_ERROR(w.Put(t_, "a", U64Key(0)));
                    return w.Put(t_, "b", U64Key(0));
                  })
                  .ok());
  constexpr int kReaders = 8, kReadsPerThread = 3000;
  std::atomic<uint64_t> committed{0};
  std::atomic<int> readers_done{0};
  std::mutex handoff_mu;
  std::vector<std::unique_ptr<ReadTxn>> handoff;  // guarded by handoff_mu

  std::thread writer([&] {
    for (uint64_t n = 1; readers_done.load() < kReaders; ++n) {
      Status s = env_->Write([&](WriteTxn& w) -> Status {
        DBFS_RETURN_IF_ERROR(w.Put(t_, "a", U64Key(n)));
        return w.Put(t_, "b", U64Key(n));
      });
      ASSERT_TRUE(s.ok()) << s.ToString();
      committed.store(n);
    }
  });
  std::vector<std::thread> readers;
  for (int id = 0; id < kReaders; ++id) {
    readers.emplace_back([&, id] {
      uint64_t last = 0;
      for (int i = 0; i < kReadsPerThread; ++i) {
        const uint64_t floor = committed.load();
        auto r = env_->BeginRead();
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        auto a = (*r)->Get(t_, "a");
        auto b = (*r)->Get(t_, "b");
        ASSERT_TRUE(a.ok() && a->has_value() && b.ok() && b->has_value());
        ASSERT_EQ(**a, **b);  // one snapshot
        uint64_t n = 0;
        KeyReader kr(**a);
        ASSERT_TRUE(kr.U64(&n));
        ASSERT_GE(n, floor) << "a renewed ReadTxn returned a stale snapshot";
        ASSERT_GE(n, last);
        last = n;
        if ((i + id) % 5 == 0) {
          // End it on whichever thread takes it next (MDB_NOTLS).
          std::unique_ptr<ReadTxn> other;
          {
            std::lock_guard l(handoff_mu);
            handoff.push_back(std::move(r).value());
            if (handoff.size() > 1) {
              other = std::move(handoff.front());
              handoff.erase(handoff.begin());
            }
          }
          other.reset();
        }
      }
      readers_done.fetch_add(1);
    });
  }
  for (auto& t : readers) t.join();
  writer.join();
  handoff.clear();

  const uint64_t begun = env_->TEST_read_txns_begun();
  // At most one per reader thread plus the handed-off one, in theory; far
  // below the number of reads in any case.
  EXPECT_LE(begun, static_cast<uint64_t>(2 * kReaders));
  EXPECT_GE(env_->TEST_pooled_read_txns(), 1u);
  EXPECT_LE(env_->TEST_pooled_read_txns(), Env::kMaxPooledReadTxns);
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), static_cast<int>(env_->TEST_pooled_read_txns()));
  const uint64_t n = committed.load();
  EXPECT_EQ(Get(t_, "a"), U64Key(n));
}

// The pool keeps at most kMaxPooledReadTxns handles; the rest give their
// reader slot back when they end.
TEST_F(EnvTest, ReadTxnPoolIsBounded) {
  OpenEnv();
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  const size_t n = Env::kMaxPooledReadTxns + 36;
  std::vector<std::unique_ptr<ReadTxn>> open;
  for (size_t i = 0; i < n; ++i) {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok()) << i << ": " << r.status().ToString();
    open.push_back(std::move(r).value());
  }
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), static_cast<int>(n));
  open.clear();
  EXPECT_EQ(env_->TEST_pooled_read_txns(), Env::kMaxPooledReadTxns);
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), static_cast<int>(Env::kMaxPooledReadTxns));
  EXPECT_EQ(Get(t_, "k"), "v");
  EXPECT_EQ(env_->TEST_read_txns_begun(), n);
}

// A map resize aborts every pooled handle before remapping (LMDB allows no
// open transaction then) and gives their reader slots back; afterwards
// BeginRead begins afresh and pools again.
TEST_F(EnvTest, PooledReadTxnsAreAbortedByAMapResize) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  ASSERT_TRUE(Put(t_, "k", "v").ok());
  const uint64_t initial = env_->map_size();
  {
    std::vector<std::unique_ptr<ReadTxn>> open;
    for (int i = 0; i < 8; ++i) {
      auto r = env_->BeginRead();
      ASSERT_TRUE(r.ok());
      ASSERT_TRUE((*r)->Get(t_, "k")->has_value());
      open.push_back(std::move(r).value());
    }
  }
  ASSERT_EQ(env_->TEST_pooled_read_txns(), 8u);
  ASSERT_EQ(env_->TEST_reader_slots_in_use(), 8);

  ASSERT_TRUE(WriteRange(0, 4096, 1024).ok());  // 4 MiB: grows the map
  ASSERT_GT(env_->map_size(), initial);
  ASSERT_GE(env_->TEST_map_full_retries(), 1u);
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 0u);
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), 0);

  const uint64_t begun = env_->TEST_read_txns_begun();
  ExpectRecords(4096, 1024);
  EXPECT_EQ(env_->TEST_read_txns_begun(), begun + 1);
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 1u);
  EXPECT_EQ(Get(t_, "k"), "v");
  EXPECT_EQ(env_->TEST_read_txns_begun(), begun + 1);
}

// Readers on several threads keep beginning and ending ReadTxns (so handles
// are pooled and renewed throughout) while a writer grows the map several
// times: each resize drains the pool under the gate, and no reader ever
// sees an error or a torn snapshot.
TEST_F(EnvTest, ReadTxnReuseAcrossRepeatedMapGrowth) {
  EnvOptions opts;
  opts.initial_map_size = 1 * kMiB;
  OpenEnv(opts);
  const std::string kProgress("progress");
  constexpr uint64_t kBatches = 32, kPerBatch = 512, kValue = 1024;  // ~16 MiB: 4+ doublings
  ASSERT_TRUE(Put(t_, kProgress, U64Key(0)).ok());
  std::atomic<bool> done{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int id = 0; id < 2; ++id) {
    readers.emplace_back([&] {
      while (!done.load()) {
        auto r = env_->BeginRead();
        ASSERT_TRUE(r.ok()) << r.status().ToString();
        const std::optional<uint64_t> progress = ReadProgress(**r, kProgress);
        ASSERT_TRUE(progress.has_value());
        const uint64_t batches = *progress;
        if (batches > 0) {  // the last record of the last batch is there
          const uint64_t i = batches * kPerBatch - 1;
          auto v = (*r)->Get(t_, U64Key(i));
          ASSERT_TRUE(v.ok() && v->has_value()) << "record " << i;
          ASSERT_EQ(**v, ValueFor(i, kValue));
        }
        reads.fetch_add(1);
        r->reset();
        // Two readers on two cores can overlap without pause, and a resize
        // waits for a moment with no reader in (resize_gate.h); give it one.
        std::this_thread::yield();
      }
    });
  }
  ASSERT_TRUE(WaitFor([&] { return reads.load() > 0; }));
  WriteProgressBatches(kProgress, kBatches, kPerBatch, kValue);
  const uint64_t reads_at_end = reads.load();
  ASSERT_TRUE(WaitFor([&] { return reads.load() > reads_at_end + 3; }));
  done.store(true);
  for (auto& t : readers) t.join();
  EXPECT_GE(env_->TEST_map_full_retries(), 4u);
  EXPECT_GE(env_->map_size(), 16 * kMiB);
  EXPECT_LT(env_->TEST_read_txns_begun(), reads.load());
  ExpectRecords(kBatches * kPerBatch, kValue);
}

// Read cursors on a renewed ReadTxn reuse parked LMDB cursor handles: each
// must come back on its own table and see the new snapshot.
TEST_F(EnvTest, ReadCursorsOnARenewedTxnSeeTheirTableAndTheNewSnapshot) {
  OpenEnv();
  auto u = env_->OpenTable("u");
  ASSERT_TRUE(u.ok());
  ASSERT_TRUE(Put(t_, "t1", "a").ok());
  ASSERT_TRUE(Put(*u, "u1", "b").ok());
  {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok());
    auto ct = (*r)->NewCursor(t_);
    auto cu = (*r)->NewCursor(*u);
    ASSERT_TRUE(ct.ok() && cu.ok());
    ASSERT_TRUE(*(*ct)->SeekFirst());
    ASSERT_TRUE(*(*cu)->SeekFirst());
    EXPECT_EQ((*ct)->key(), "t1");
    EXPECT_EQ((*cu)->key(), "u1");
    // ct is destroyed before the txn ends, cu after it (detached then).
    ct->reset();
    r->reset();
    EXPECT_FALSE((*cu)->Valid());
  }
  ASSERT_TRUE(Put(t_, "t0", "c").ok());
  ASSERT_TRUE(Put(*u, "u0", "d").ok());
  for (int round = 0; round < 3; ++round) {
    auto r = env_->BeginRead();
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(env_->TEST_read_txns_begun(), 1u);
    // Open in the other order, and two on one table, so a handle parked for
    // one table could only be handed to the other by mistake.
    auto cu = (*r)->NewCursor(*u);
    auto ct = (*r)->NewCursor(t_);
    auto ct2 = (*r)->NewCursor(t_);
    ASSERT_TRUE(cu.ok() && ct.ok() && ct2.ok());
    ASSERT_TRUE(*(*cu)->SeekFirst());
    EXPECT_EQ((*cu)->key(), "u0");
    ASSERT_TRUE(*(*cu)->Next());
    EXPECT_EQ((*cu)->key(), "u1");
    EXPECT_FALSE(*(*cu)->Next());
    ASSERT_TRUE(*(*ct)->SeekFirst());
    ASSERT_TRUE(*(*ct2)->SeekLast());
    EXPECT_EQ((*ct)->key(), "t0");
    EXPECT_EQ((*ct2)->key(), "t1");
    ASSERT_TRUE(*(*ct)->Next());
    EXPECT_EQ((*ct)->key(), "t1");
    EXPECT_EQ((*ct)->value(), "a");
  }
}

// A read-only Env pools and renews too, and a renewed txn sees what another
// process committed meanwhile -- even when that process grew the map past
// ours (the renew fails with MDB_MAP_RESIZED; BeginRead adopts the new size,
// aborting the pooled handles first).
TEST_F(EnvTest, ReadOnlyEnvReusesTxnsAndFollowsAnotherProcess) {
  EnvOptions small;
  small.initial_map_size = 1 * kMiB;
  OpenEnv(small);
  ASSERT_TRUE(Put(t_, "k", "v1").ok());
  env_.reset();

  EnvOptions ro = small;
  ro.read_only = true;
  auto opened = Env::Open(dir_, ro);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  env_ = std::move(opened).value();
  auto t = env_->OpenTable("t");
  ASSERT_TRUE(t.ok());
  t_ = *t;
  for (int i = 0; i < 10; ++i) ASSERT_EQ(Get(t_, "k"), "v1");
  EXPECT_EQ(env_->TEST_read_txns_begun(), 1u);
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 1u);
  {
    std::vector<std::unique_ptr<ReadTxn>> open;  // three pooled handles
    for (int i = 0; i < 3; ++i) open.push_back(std::move(env_->BeginRead()).value());
  }
  ASSERT_EQ(env_->TEST_pooled_read_txns(), 3u);
  ASSERT_EQ(env_->TEST_read_txns_begun(), 3u);
  const uint64_t ro_map = env_->map_size();

  // Another process (LMDB forbids a second Env on one directory in-process)
  // writes v2 and 4 MiB more, growing the map beyond ours.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto w = Env::Open(dir_, small);
    if (!w.ok()) _exit(10);
    auto wt = (*w)->OpenTable("t");
    if (!wt.ok()) _exit(11);
    Status s = (*w)->Write([&](WriteTxn& txn) -> Status {
      for (uint64_t i = 0; i < 4096; ++i) {
        DBFS_RETURN_IF_ERROR(txn.Put(*wt, U64Key(i), ValueFor(i, 1024)));
      }
      return txn.Put(*wt, "k", "v2");
    });
    _exit(s.ok() ? 0 : 12);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;

  EXPECT_EQ(Get(t_, "k"), "v2");
  EXPECT_GT(env_->map_size(), ro_map);
  // The first pooled handle failed to renew; adopting the new map size
  // aborted the other two. Only the new one is pooled now.
  EXPECT_EQ(env_->TEST_read_txns_begun(), 4u);
  EXPECT_EQ(env_->TEST_pooled_read_txns(), 1u);
  EXPECT_EQ(env_->TEST_reader_slots_in_use(), 1);
  ExpectRecords(4096, 1024);
  EXPECT_EQ(Get(t_, "k"), "v2");
  EXPECT_EQ(env_->TEST_read_txns_begun(), 4u);
}

}  // namespace
}  // namespace dbfs::kv
