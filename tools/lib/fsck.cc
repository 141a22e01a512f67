#include "tools/lib/fsck.h"

#include <sys/stat.h>

#include <deque>
#include <map>
#include <set>
#include <unordered_map>

#include "fuse/filesystem.h"
#include "fuse/inode_format.h"
#include "mvcc/store.h"
#include "mvcc/superblock.h"
#include "mvcc/volume_lock.h"
#include "wal/reader.h"

namespace dbfs {

namespace {

using mvcc::Table;

struct Checker {
  FsckReport& rep;
  void Error(std::string s) { rep.errors.push_back(std::move(s)); }
  void Note(std::string s) { rep.notes.push_back(std::move(s)); }
};

}  // namespace

FsckReport Fsck(const std::string& volume_dir, const FsckOptions& options) {
  FsckReport rep;
  Checker ck{rep};
  auto fail = [&](int code, std::string msg) {
    ck.Error(std::move(msg));
    rep.exit_code = code;
    return rep;
  };

  auto sb = ReadSuperblock(volume_dir);
  if (!sb.ok()) return fail(kFsckOperational, sb.status().ToString());

  // A mounted volume is in flux; checking it would report false damage.
  auto lock = VolumeLock::AcquireWhenUnmounted(volume_dir, "fsck.dbfs");
  if (!lock.ok()) return fail(kFsckOperational, lock.status().ToString());

  // 1. Every WAL record's CRC, from the oldest segment on.
  {
    auto reader = wal::Reader::Open(wal::DefaultFileSystem(), volume_dir + "/wal", 0, sb->uuid);
    if (!reader.ok()) return fail(kFsckUncorrected, "WAL: " + reader.status().ToString());
    (*reader)->set_read_data(false);
    wal::Record rec;
    for (;;) {
      auto more = (*reader)->Next(&rec);
      if (!more.ok()) {
        ck.Error("WAL: " + more.status().ToString());
        break;
      }
      if (!*more) break;
      ++rep.wal_records;
    }
    if ((*reader)->end().torn_tail) {
      ck.Note("WAL has a torn tail of " + std::to_string((*reader)->end().discarded_bytes) +
              " bytes (normal after a crash; the next mount discards it)");
    }
  }

  // 2. Open the store read-only: this replays pending commits in memory.
  mvcc::StoreOptions so;
  so.read_only = true;
  auto store_r = mvcc::Store::Open(volume_dir, so);
  if (!store_r.ok()) {
    return fail(rep.errors.empty() ? kFsckOperational : kFsckUncorrected,
                "cannot open the volume: " + store_r.status().ToString());
  }
  auto& store = *store_r;
  if (store->recovery().commits_replayed > 0) {
    ck.Note(std::to_string(store->recovery().commits_replayed) +
            " committed operations are pending replay (the volume was not cleanly unmounted)");
  }
  const mvcc::Csn snap = store->visible_csn();

  // 3. Load every inode.
  std::unordered_map<uint64_t, Inode> inodes;
  Status st = store->Scan(snap, Table::kInodes, "", "", [&](std::string_view k, std::string_view v) {
    if (k.size() != 8) {
      ck.Error("inodes: key of bad length " + std::to_string(k.size()));
      return true;
    }
    uint64_t ino = GetBE64(k.data());
    auto n = DecodeInode(v);
    if (!n.ok()) ck.Error("inode " + std::to_string(ino) + ": " + n.status().ToString());
    else inodes.emplace(ino, std::move(*n));
    return true;
  });
  if (!st.ok()) return fail(kFsckUncorrected, "reading inodes: " + st.ToString());
  rep.inodes = inodes.size();
  if (store->next_ino() <= (inodes.empty() ? 0 : std::max_element(inodes.begin(), inodes.end(),
      [](auto& a, auto& b) { return a.first < b.first; })->first)) {
    ck.Error("next inode number counter is not above every inode number");
  }

  auto root = inodes.find(kRootIno);
  if (root == inodes.end() || !root->second.IsDir()) {
    ck.Error("root directory (inode 1) is missing or not a directory");
  }

  // 4. Directory entries: targets exist, types match, count links.
  std::unordered_map<uint64_t, uint64_t> links;      // non-directory: entries naming it
  std::unordered_map<uint64_t, uint64_t> subdirs;    // directory: child directories
  std::unordered_map<uint64_t, std::vector<uint64_t>> dir_parents;  // directory -> parents naming it
  std::unordered_map<uint64_t, std::vector<uint64_t>> children;     // for the reachability walk
  st = store->Scan(snap, Table::kDirents, "", "", [&](std::string_view k, std::string_view v) {
    ++rep.dirents;
    if (k.size() < 10 || k.back() != '\0') {
      ck.Error("dirents: malformed key");
      return true;
    }
    const uint64_t parent = GetBE64(k.data());
    const std::string name(k.substr(8, k.size() - 9));
    uint64_t child;
    uint32_t type;
    const std::string where = "entry '" + name + "' in directory " + std::to_string(parent);
    if (!DecodeDirent(v, &child, &type)) {
      ck.Error(where + ": malformed value");
      return true;
    }
    if (name.size() > kNameMax || name.find('/') != std::string::npos) ck.Error(where + ": invalid name");
    auto p = inodes.find(parent);
    if (p == inodes.end() || !p->second.IsDir()) ck.Error(where + ": parent is not a live directory");
    auto c = inodes.find(child);
    if (c == inodes.end()) {
      ck.Error(where + ": points to missing inode " + std::to_string(child));
      return true;
    }
    if ((c->second.mode & S_IFMT) != type) ck.Error(where + ": type does not match inode " + std::to_string(child));
    if (c->second.IsDir()) {
      ++subdirs[parent];
      dir_parents[child].push_back(parent);
    } else {
      ++links[child];
    }
    children[parent].push_back(child);
    return true;
  });
  if (!st.ok()) return fail(kFsckUncorrected, "reading directory entries: " + st.ToString());

  // 5. Orphans: unlinked inodes awaiting reclamation.
  std::set<uint64_t> orphans;
  st = store->Scan(snap, Table::kOrphans, "", "", [&](std::string_view k, std::string_view) {
    if (k.size() == 8) orphans.insert(GetBE64(k.data()));
    else ck.Error("orphans: key of bad length");
    return true;
  });
  if (!st.ok()) return fail(kFsckUncorrected, "reading the orphan list: " + st.ToString());
  if (!orphans.empty()) {
    ck.Note(std::to_string(orphans.size()) + " unlinked inodes are pending reclamation (done at mount)");
  }

  // 6. Link counts, parents, reachability.
  std::set<uint64_t> reachable{kRootIno};
  std::deque<uint64_t> todo{kRootIno};
  while (!todo.empty()) {
    uint64_t d = todo.front();
    todo.pop_front();
    for (uint64_t c : children[d]) {
      if (reachable.insert(c).second) todo.push_back(c);
    }
  }
  for (const auto& [ino, n] : inodes) {
    const std::string who = "inode " + std::to_string(ino);
    if (n.IsDir()) {
      const auto& ps = dir_parents[ino];
      if (ino == kRootIno) {
        if (!ps.empty()) ck.Error("root directory is named by a directory entry");
      } else if (n.nlink == 0) {
        if (!orphans.count(ino)) ck.Error(who + ": removed directory not on the orphan list");
        continue;
      } else if (ps.size() != 1) {
        ck.Error(who + ": directory is named by " + std::to_string(ps.size()) + " entries (must be 1)");
      } else if (n.parent != ps[0]) {
        ck.Error(who + ": '..' says " + std::to_string(n.parent) + " but it lives in " + std::to_string(ps[0]));
      }
      const uint64_t want = 2 + subdirs[ino];
      if (n.nlink != want) {
        ck.Error(who + ": directory link count " + std::to_string(n.nlink) + ", expected " + std::to_string(want));
      }
    } else {
      const uint64_t want = links[ino];
      if (n.nlink != want) {
        ck.Error(who + ": link count " + std::to_string(n.nlink) + ", expected " + std::to_string(want));
      }
      if (n.nlink == 0 && !orphans.count(ino)) ck.Error(who + ": unlinked inode not on the orphan list");
    }
    if (n.nlink > 0 && !reachable.count(ino)) ck.Error(who + ": not reachable from the root directory");
  }
  for (uint64_t o : orphans) {
    auto it = inodes.find(o);
    if (it != inodes.end() && it->second.nlink != 0) {
      ck.Error("inode " + std::to_string(o) + " is on the orphan list but still linked");
    }
  }

  // 7. Extents and xattrs belong to live inodes; slices are well-formed and
  //    point inside existing WAL segments.
  const uint32_t chunk = store->chunk_size();
  std::map<uint32_t, uint64_t> seg_sizes;
  auto seg_size = [&](uint32_t seg) -> uint64_t {
    auto it = seg_sizes.find(seg);
    if (it != seg_sizes.end()) return it->second;
    char name[32];
    snprintf(name, sizeof(name), "/wal/%08u.wal", seg);
    struct stat stt;
    uint64_t sz = stat((volume_dir + name).c_str(), &stt) == 0 ? stt.st_size : 0;
    seg_sizes[seg] = sz;
    return sz;
  };
  st = store->Scan(snap, Table::kExtents, "", "", [&](std::string_view k, std::string_view v) {
    ++rep.extents;
    if (k.size() != 16) {
      ck.Error("extents: key of bad length");
      return true;
    }
    const uint64_t ino = GetBE64(k.data()), idx = GetBE64(k.data() + 8);
    const std::string where = "inode " + std::to_string(ino) + " chunk " + std::to_string(idx);
    auto n = inodes.find(ino);
    if (n == inodes.end()) {
      ck.Error(where + ": data of a missing inode");
      return true;
    }
    auto l = DecodeSlices(v);
    if (!l.ok()) {
      ck.Error(where + ": " + l.status().ToString());
      return true;
    }
    uint32_t prev_end = 0;
    for (const Slice& s : *l) {
      if (s.len == 0 || s.off < prev_end || s.end() > chunk) ck.Error(where + ": overlapping or out-of-chunk slice");
      prev_end = s.end();
      if (s.data + s.len > seg_size(s.segment)) {
        ck.Error(where + ": slice points past the end of WAL segment " + std::to_string(s.segment));
      }
      if (idx * chunk + s.end() > n->second.size) ck.Error(where + ": data beyond the file size");
    }
    return true;
  });
  if (!st.ok()) return fail(kFsckUncorrected, "reading extents: " + st.ToString());
  st = store->Scan(snap, Table::kXattrs, "", "", [&](std::string_view k, std::string_view) {
    ++rep.xattrs;
    if (k.size() < 10 || !inodes.count(GetBE64(k.data()))) ck.Error("xattr of a missing inode");
    return true;
  });
  if (!st.ok()) return fail(kFsckUncorrected, "reading xattrs: " + st.ToString());

  (void)options;
  rep.exit_code = rep.errors.empty() ? kFsckClean : kFsckUncorrected;
  return rep;
}

}  // namespace dbfs
