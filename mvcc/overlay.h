// Overlay: committed versions that are not yet in LMDB (DESIGN §4).
//
// Commits publish their writes here (under the store's commit mutex, in CSN
// order); the flusher copies versions up to a CSN into LMDB and then trims
// them. Readers look here first and fall back to LMDB only when the overlay
// holds no version visible to their snapshot — and they must open their LMDB
// read transaction AFTER consulting the overlay: the flusher commits LMDB
// before it trims, so a version trimmed before the overlay lookup is already
// in any LMDB transaction begun after it.
//
// Thread-safe. Lock order: one table's mutex at a time (never two).
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "mvcc/keys.h"
#include "mvcc/redo.h"

namespace dbfs::mvcc {


class Overlay {
 public:
  Overlay() = default;
  Overlay(const Overlay&) = delete;
  Overlay& operator=(const Overlay&) = delete;

  // Adds the writes as versions with `csn` (moves the values out).
  void Publish(std::vector<Write>* writes, Csn csn);

  enum class Lookup { kAbsent, kLive, kTombstone };
  // The newest version of `key` with csn <= snap, if the overlay has one.
  Lookup Get(Table t, std::string_view key, Csn snap, std::string* value) const;
  // Newest csn of any version of `key`, 0 if none.
  Csn NewestCsn(Table t, std::string_view key) const;

  // The first key in [begin, end) with a version newer than `snap`.
  std::optional<std::string> FirstNewerThan(Table t, std::string_view begin, std::string_view end,
                                            Csn snap) const;

  // Copies, for keys in [begin, end), the newest version <= snap (tombstones
  // included, so they can mask LMDB). end empty = no upper bound.
  void Range(Table t, std::string_view begin, std::string_view end, Csn snap,
             std::map<std::string, std::optional<std::string>>* out) const;

  // Copies every version with csn <= upto (for the flusher).
  void CollectUpTo(Table t, Csn upto, std::vector<std::pair<std::string, Chain>>* out) const;
  // Drops versions with csn <= upto of the given keys.
  void TrimUpTo(Table t, const std::vector<std::pair<std::string, Chain>>& keys, Csn upto);

  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t versions() const { return versions_.load(std::memory_order_relaxed); }

 private:
  struct Part {
    mutable std::shared_mutex mu;
    std::map<std::string, Chain, std::less<>> map;  // guarded by mu
  };
  Part parts_[kNumTables];
  std::atomic<uint64_t> bytes_{0};
  std::atomic<uint64_t> versions_{0};
};

}  // namespace dbfs::mvcc
