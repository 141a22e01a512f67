// File data: open, create, read, write, truncate, fallocate, SEEK_DATA /
// SEEK_HOLE, copy_file_range, fsync. A file is cut into chunks of the
// volume's chunk size; each chunk is one extents key holding its slice list
// (fs/slices.h), and every write appends its bytes to the store's data space
// and inserts a slice.
#include <linux/falloc.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "fs/engine.h"
#include "fs/slices.h"

namespace dbfs {

namespace {

// A chunk's slice list is rewritten by every write to the chunk and its live
// bytes are rewritten (compacted into one DATA record) when the list grows
// past this: random 4 KiB writes cost ~5 KiB of list per write and a 1 MiB
// compaction per ~128 writes. (At 32 the compactions alone were 12x the data.)
constexpr size_t kMaxSlicesPerChunk = 256;
constexpr time_t kRelatimeWindow = 24 * 3600;

}  // namespace

Result<uint64_t> Engine::Open(const Caller& c, uint64_t ino, int flags, uint64_t* size) {
  bool regular;
  std::shared_ptr<ExplicitTx> tx;  // the one the handle is opened in, if any
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(op.t(), ino));
    if (n.IsDir() && (flags & O_ACCMODE) != O_RDONLY) return Status(Code::kIsDir, "is a directory");
    regular = n.IsReg();
    if (size != nullptr) *size = n.size;
    tx = op.tx;
  }
  if ((flags & O_TRUNC) && (flags & O_ACCMODE) != O_RDONLY && regular) {
    if (size != nullptr) *size = 0;
    SetAttrIn in;
    in.valid = SetAttrIn::kSize;
    in.size = 0;
    DBFS_RETURN_IF_ERROR(SetAttr(c, ino, in).status());
  }
  auto h = std::make_unique<Handle>();
  h->ino = ino;
  h->flags = flags;
  if (tx) {
    h->tx = tx;
    h->tx_outcome = tx->outcome;
  }
  uint64_t fh;
  {
    std::lock_guard g(handles_mu_);
    fh = next_fh_++;
    handles_.emplace(fh, std::move(h));
  }
  std::lock_guard g(refs_mu_);
  ++refs_[ino].opens;
  return fh;
}

Result<Filesystem::Created> Engine::Create(const Caller& c, uint64_t parent, std::string_view name,
                                           uint32_t mode, int flags) {
  auto made = MakeNode(c, parent, name, S_IFREG | (mode & 07777), 0, "");
  if (!made.ok()) {
    if (made.status().code() != Code::kExists || (flags & O_EXCL)) return made.TakeStatus();
    // Lost a race with another creator: open the existing file (like open(2)).
    DBFS_ASSIGN_OR_RETURN(Attr a, Lookup(c, parent, name));
    made = a;
  }
  auto fh = Open(c, made->ino, flags & ~O_TRUNC, nullptr);
  if (!fh.ok()) {
    Forget(made->ino, 1);
    return fh.TakeStatus();
  }
  return Filesystem::Created{*made, *fh};
}

Status Engine::ReadRange(Transaction& t, uint64_t ino, uint64_t off, size_t size, char* buf) {
  const uint64_t end = off + size;
  // Bytes of [off, end) no slice covers are holes: zeros. `filled` is how far
  // from `off` the buffer is written, slices being visited in file order.
  uint64_t filled = off;
  auto zero_to = [&](uint64_t pos) {
    if (pos > filled) std::memset(buf + (filled - off), 0, pos - filled);
    filled = std::max(filled, pos);
  };
  auto read_chunk = [&](uint64_t chunk, std::string_view encoded) -> Status {
    const uint64_t base = chunk * chunk_;
    return ForEachSlice(encoded, [&](const Slice& s) -> Status {
      const uint64_t a = std::max<uint64_t>(base + s.off, off);
      const uint64_t b = std::min<uint64_t>(base + s.end(), end);
      if (a >= b) return Status::Ok();
      zero_to(a);
      mvcc::DataRef ref{s.segment, s.data, s.len};
      DBFS_RETURN_IF_ERROR(store_->ReadData(ref, a - (base + s.off), b - a, buf + (a - off)));
      filled = b;
      return Status::Ok();
    });
  };
  const uint64_t first = off / chunk_, last = (end - 1) / chunk_;
  if (first == last) {
    // Most reads (up to max_read within one chunk): one point lookup.
    DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kExtents, ChunkKey(ino, first)));
    if (v) DBFS_RETURN_IF_ERROR(read_chunk(first, *v));
  } else {
    Status inner;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, first), ChunkKey(ino, last + 1),
                                [&](std::string_view k, std::string_view v) {
                                  inner = read_chunk(GetBE64(k.data() + 8), v);
                                  return inner.ok();
                                }));
    DBFS_RETURN_IF_ERROR(inner);
  }
  zero_to(end);
  return Status::Ok();
}

void Engine::MaybeUpdateAtime(uint64_t ino) {
  if (opts_.noatime || opts_.read_only) return;
  // An atime update of an inode an open transaction touched would make that
  // transaction fail at commit (first committer wins on the inode record):
  // readers do not abort writers, so the update is skipped (relatime is a
  // hint, not a guarantee).
  if (open_txs_.load(std::memory_order_acquire) > 0) {
    std::lock_guard g(hot_mu_);
    if (hot_.count(ino)) return;
  }
  Status st = [&]() -> Status {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(kInternal, {ino}));
    op.meta.flags |= mvcc::kCommitInternal | mvcc::kCommitAtime;
    Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    const timespec now = Now();
    // relatime: only when atime is not newer than mtime/ctime, or a day old.
    if (!TimeLE(n.atime, n.mtime) && !TimeLE(n.atime, n.ctime) &&
        now.tv_sec - n.atime.tv_sec < kRelatimeWindow) {
      return Status::Ok();
    }
    n.atime = now;
    StoreInode(t, ino, n);
    return Finish(op);
  }();
  if (!st.ok() && st.code() != Code::kNotFound)
    spdlog::warn("atime update of {} failed: {}", ino, st.ToString());
}

Result<size_t> Engine::Read(const Caller& c, uint64_t ino, uint64_t, uint64_t off, size_t size,
                            char* buf) {
  bool touch_atime = false;
  size_t n_read = 0;
  {
    DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
    Transaction& t = op.t();
    DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
    if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
    if (off < n.size && size > 0) {
      n_read = static_cast<size_t>(std::min<uint64_t>(size, n.size - off));
      DBFS_RETURN_IF_ERROR(ReadRange(t, ino, off, n_read, buf));
      // The whole pages served (the last one may end at EOF): what a page
      // cache filled from this read holds (fs/write_edges.h).
      const uint64_t end = off + n_read;
      const uint64_t end_page = end == n.size ? (end + WriteEdges::kPage - 1) / WriteEdges::kPage
                                              : end / WriteEdges::kPage;
      edges_.NoteFill(ino, (off + WriteEdges::kPage - 1) / WriteEdges::kPage, end_page,
                      t.snapshot());
    }
    touch_atime = !opts_.noatime && !opts_.read_only && !op.tx &&
                  (TimeLE(n.atime, n.mtime) || TimeLE(n.atime, n.ctime) ||
                   Now().tv_sec - n.atime.tv_sec >= kRelatimeWindow);
  }
  if (touch_atime) MaybeUpdateAtime(ino);
  return n_read;
}

Status Engine::CompactChunk(Transaction& t, SliceList* l) {
  // Rewrites the chunk's live bytes as one DATA record (holes stay holes).
  const uint32_t lo = l->front().off;
  const uint32_t hi = l->back().end();
  std::string buf(hi - lo, '\0');
  for (const Slice& s : *l) {
    mvcc::DataRef ref{s.segment, s.data, s.len};
    DBFS_RETURN_IF_ERROR(store_->ReadData(ref, 0, s.len, buf.data() + (s.off - lo)));
  }
  DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, t.AppendData(buf));
  SliceList out;
  for (const Slice& s : *l) {
    if (!out.empty() && out.back().end() == s.off) {
      out.back().len += s.len;
    } else {
      out.push_back(Slice{s.off, s.len, ref.segment, ref.offset + (s.off - lo)});
    }
  }
  *l = std::move(out);
  return Status::Ok();
}

Status Engine::WriteChunks(Transaction& t, uint64_t ino, Inode* n, uint64_t off, const char* data,
                           size_t size) {
  DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, t.AppendData(std::string_view(data, size)));
  uint64_t pos = off;
  const uint64_t end = off + size;
  while (pos < end) {
    const uint64_t chunk = pos / chunk_;
    const uint32_t coff = static_cast<uint32_t>(pos % chunk_);
    const uint32_t len = static_cast<uint32_t>(std::min<uint64_t>(end - pos, chunk_ - coff));
    std::string key = ChunkKey(ino, chunk);
    DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kExtents, key));
    SliceList l;
    if (v) {
      DBFS_ASSIGN_OR_RETURN(l, DecodeSlices(*v));
    }
    n->alloc += InsertSlice(&l, Slice{coff, len, ref.segment, ref.offset + (pos - off)});
    if (l.size() > kMaxSlicesPerChunk) DBFS_RETURN_IF_ERROR(CompactChunk(t, &l));
    t.Put(Table::kExtents, std::move(key), EncodeSlices(l));
    pos += len;
  }
  return Status::Ok();
}

Result<size_t> Engine::Write(const Caller& c, uint64_t ino, uint64_t fh, uint64_t off,
                             const char* data, size_t size, WriteOrigin origin) {
  const bool writeback = origin == WriteOrigin::kWriteback;
  int flags = 0;
  std::shared_ptr<ExplicitTx> tx;
  {
    std::lock_guard g(handles_mu_);
    auto it = handles_.find(fh);
    if (it != handles_.end()) {
      flags = it->second->flags;
      if (writeback && it->second->tx_outcome) {
        // Pages of a shared mapping written back by the kernel (on behalf of
        // any process, or none): they belong to the transaction the mapped
        // handle was opened in. After it aborted they are dropped; after it
        // committed they are ordinary late writes.
        const int outcome = it->second->tx_outcome->load(std::memory_order_acquire);
        if (outcome == kTxNotCommitted) {
          spdlog::debug("inode {}: {} bytes of mapped pages of an aborted transaction dropped", ino,
                        size);
          return size;
        }
        if (outcome == kTxOpen) tx = it->second->tx.lock();
      }
    }
  }
  if (size == 0) return size_t{0};
  if (off + size > kMaxFileSize || off + size < off) return Status(Code::kTooBig, "file too large");
  // The kernel's writeback is nobody's request: never the caller's transaction.
  DBFS_ASSIGN_OR_RETURN(
      OpScope op, writeback ? BeginOpIn(std::move(tx), c, {ino}, {}, false) : BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
  if (flags & O_APPEND) off = n.size;
  std::vector<size_t> edge_records;
  if (writeback) {
    // A page written back from a shared mapping may have been read before
    // a write changed some of its bytes: those are left as they are now.
    for (const auto& [a, b] : edges_.RunsToApply(ino, off, std::string_view(data, size))) {
      DBFS_RETURN_IF_ERROR(WriteChunks(t, ino, &n, a, data + (a - off), b - a));
    }
  } else {
    if (!op.tx && origin == WriteOrigin::kDirect) {
      // What this write overwrites in pages it shares with the rest of the
      // file (read under the inode lock, so before any writeback of them).
      for (const auto& [a, b] : WriteEdges::EdgeRanges(off, size)) {
        std::string old(b - a, '\0');
        DBFS_RETURN_IF_ERROR(ReadRange(t, ino, a, b - a, old.data()));
        edge_records.push_back(edges_.Record(ino, a, std::move(old)));
      }
    }
    DBFS_RETURN_IF_ERROR(WriteChunks(t, ino, &n, off, data, size));
  }
  const timespec now = Now();
  n.size = std::max<uint64_t>(n.size, off + size);
  n.mtime = n.ctime = now;
  // A write by anyone but root clears set-user-ID (and group-executable
  // set-group-ID), so a modified binary cannot keep its privileges.
  if (c.uid != 0 && (n.mode & (S_ISUID | S_ISGID))) {
    n.mode &= ~S_ISUID;
    if (n.mode & S_IXGRP) n.mode &= ~S_ISGID;
  }
  StoreInode(t, ino, n);
  DBFS_RETURN_IF_ERROR(Finish(op, flags));
  for (size_t h : edge_records) edges_.Committed(ino, h, op.committed_csn);
  if (origin == WriteOrigin::kPageCache && !op.tx) {
    // The page cache now holds this write's bytes in the pages it covers whole.
    const uint64_t P = WriteEdges::kPage;
    edges_.NoteFill(ino, (off + P - 1) / P, (off + size) / P, op.committed_csn);
  }
  return size;
}

Status Engine::Release(uint64_t ino, uint64_t fh) {
  {
    std::lock_guard g(handles_mu_);
    handles_.erase(fh);
  }
  Unref(ino, 0, 1);
  return Status::Ok();
}

Status Engine::Fsync(const Caller& c) {
  fsync_calls_.fetch_add(1, std::memory_order_relaxed);
  if (auto tx = TxFor(c)) {
    // Inside a transaction nothing is visible yet: fsync makes the commit durable.
    std::lock_guard g(tx->mu);
    tx->durable = true;
    return Status::Ok();
  }
  // Every commit is in the WAL in order; syncing it to its end makes this
  // file's (and everything earlier's) changes durable. Group commit shares
  // the fdatasync with concurrent callers.
  return store_->SyncAll();
}

Status Engine::Truncate(Transaction& t, uint64_t ino, Inode* n, uint64_t size) {
  if (size > kMaxFileSize) return Status(Code::kTooBig, "file too large");
  if (size < n->size) {
    // Drop whole chunks past the new end and cut the boundary chunk.
    const uint64_t first_dead = (size + chunk_ - 1) / chunk_;
    std::vector<std::pair<std::string, SliceList>> cut;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, size / chunk_), InoKey(ino + 1),
                                [&](std::string_view k, std::string_view v) {
                                  auto l = DecodeSlices(v);
                                  if (l.ok()) cut.emplace_back(std::string(k), std::move(*l));
                                  return true;
                                }));
    for (auto& [k, l] : cut) {
      uint64_t chunk = GetBE64(k.data() + 8);
      uint64_t removed;
      if (chunk >= first_dead) {
        removed = 0;
        for (const auto& s : l) removed += s.len;
        t.Delete(Table::kExtents, k);
      } else {
        removed =
            RemoveRange(&l, static_cast<uint32_t>(size % chunk_), static_cast<uint32_t>(chunk_));
        if (l.empty())
          t.Delete(Table::kExtents, k);
        else
          t.Put(Table::kExtents, k, EncodeSlices(l));
      }
      n->alloc -= std::min(n->alloc, removed);
    }
  }
  n->size = size;
  return Status::Ok();
}

Status Engine::Fallocate(const Caller& c, uint64_t ino, int mode, uint64_t off, uint64_t len) {
  const int supported = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
  if (mode & ~supported) return Status::NotSupported("fallocate mode not supported");
  if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)) {
    return Status::NotSupported("PUNCH_HOLE requires KEEP_SIZE");
  }
  if ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE)) {
    return Status::Invalid("PUNCH_HOLE and ZERO_RANGE together");
  }
  if (len == 0) return Status::Invalid("zero length");
  if (off + len > kMaxFileSize || off + len < off) return Status(Code::kTooBig, "file too large");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (n.IsDir()) return Status(Code::kIsDir, "is a directory");
  if (!n.IsReg()) return Status(Code::kErrno, "not a regular file", ENODEV);
  const timespec now = Now();
  if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
    // Drop the data of [off, off+len) chunk by chunk: reads return zeros.
    const uint64_t end = std::min(off + len, std::max(n.size, off + len));
    std::vector<std::pair<std::string, SliceList>> hit;
    DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, off / chunk_),
                                ChunkKey(ino, (end - 1) / chunk_ + 1),
                                [&](std::string_view k, std::string_view v) {
                                  auto l = DecodeSlices(v);
                                  if (l.ok()) hit.emplace_back(std::string(k), std::move(*l));
                                  return true;
                                }));
    for (auto& [k, l] : hit) {
      const uint64_t base = GetBE64(k.data() + 8) * chunk_;
      const uint32_t a = static_cast<uint32_t>(std::max(off, base) - base);
      const uint32_t b = static_cast<uint32_t>(std::min(end, base + chunk_) - base);
      n.alloc -= std::min(n.alloc, RemoveRange(&l, a, b));
      if (l.empty()) t.Delete(Table::kExtents, k);
      else t.Put(Table::kExtents, k, EncodeSlices(l));
    }
    n.mtime = n.ctime = now;
  }
  if (!(mode & FALLOC_FL_PUNCH_HOLE)) {
    // Allocation (mode 0, KEEP_SIZE, ZERO_RANGE): a log-structured store
    // cannot reserve blocks in place, so it reserves by writing: every hole
    // of every 4 KiB block the range touches gets zeros, appended to the log
    // now. Later writes there overwrite slices instead of filling holes,
    // statfs shows the space as used, st_blocks counts it, and a request
    // for more than the free space fails with ENOSPC before anything
    // changed. With KEEP_SIZE the zeros may lie past EOF (like ext4's
    // blocks past EOF): a truncate drops them, an extension exposes them.
    DBFS_RETURN_IF_ERROR(AllocateRange(t, ino, &n, off, len));
  }
  if (!(mode & FALLOC_FL_KEEP_SIZE) && off + len > n.size) {
    n.size = off + len;
    n.mtime = n.ctime = now;
  }
  StoreInode(t, ino, n);
  return Finish(op);
}

Status Engine::AllocateRange(Transaction& t, uint64_t ino, Inode* n, uint64_t off,
                                     uint64_t len) {
  constexpr uint64_t kAllocBlock = 4096;
  const uint64_t a = off / kAllocBlock * kAllocBlock;
  const uint64_t b = std::min(kMaxFileSize, (off + len + kAllocBlock - 1) / kAllocBlock * kAllocBlock);
  // The holes of [a, b), per chunk: {chunk, {offset in chunk, length}}.
  struct Hole {
    uint64_t chunk;
    uint32_t off, len;
  };
  std::vector<Hole> holes;
  std::map<uint64_t, SliceList> lists;
  uint64_t needed = 0;
  for (uint64_t chunk = a / chunk_; chunk * chunk_ < b; ++chunk) {
    const uint64_t base = chunk * chunk_;
    const uint32_t ca = static_cast<uint32_t>(std::max(a, base) - base);
    const uint32_t cb = static_cast<uint32_t>(std::min(b, base + chunk_) - base);
    DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kExtents, ChunkKey(ino, chunk)));
    SliceList l;
    if (v) {
      DBFS_ASSIGN_OR_RETURN(l, DecodeSlices(*v));
    }
    uint32_t pos = ca;
    for (const Slice& s : l) {
      if (s.end() <= pos) continue;
      if (s.off >= cb) break;
      if (s.off > pos) holes.push_back({chunk, pos, s.off - pos});
      pos = std::max(pos, s.end());
    }
    if (pos < cb) holes.push_back({chunk, pos, cb - pos});
    lists.emplace(chunk, std::move(l));
  }
  for (const Hole& h : holes) needed += h.len;
  if (needed == 0) return Status::Ok();
  if (Result<mvcc::Space> space = store_->StatSpace(); space.ok()) {
    const uint64_t avail = space->avail_bytes;
    if (needed > avail) {
      return Status::NoSpace(
          fmt::format("fallocate needs {} bytes, the volume has {} free", needed, avail));
    }
  }
  static const std::string kZeros(1 << 20, '\0');
  for (const Hole& h : holes) {
    SliceList& l = lists[h.chunk];
    uint32_t done = 0;
    while (done < h.len) {
      const uint32_t piece = std::min<uint32_t>(h.len - done, static_cast<uint32_t>(kZeros.size()));
      DBFS_ASSIGN_OR_RETURN(mvcc::DataRef ref, t.AppendData(std::string_view(kZeros.data(), piece)));
      n->alloc += InsertSlice(&l, Slice{h.off + done, piece, ref.segment, ref.offset});
      done += piece;
    }
  }
  for (auto& [chunk, l] : lists) {
    if (l.size() > kMaxSlicesPerChunk) DBFS_RETURN_IF_ERROR(CompactChunk(t, &l));
    if (!l.empty()) t.Put(Table::kExtents, ChunkKey(ino, chunk), EncodeSlices(l));
  }
  return Status::Ok();
}

Result<uint64_t> Engine::Lseek(const Caller& c, uint64_t ino, uint64_t off, int whence) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return Status::Invalid("bad whence");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (off >= n.size) return Status(Code::kErrno, "offset at or past end of file", ENXIO);
  // Answers are in whole blocks, as ext4 and xfs give them: a block holding
  // any written byte is data, and holes start and end on block boundaries
  // (the end of file excepted). Chunks are whole blocks, so a block never
  // straddles two slice lists.
  constexpr uint64_t kSeekBlock = 4096;
  static_assert(kSeekBlock <= (uint64_t{1} << 20), "a seek block must fit in a chunk");
  std::optional<uint64_t> found;
  uint64_t pos = off;  // SEEK_HOLE: end of the data run covering off so far
  Status bad;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kExtents, ChunkKey(ino, off / chunk_), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view v) {
                                auto l = DecodeSlices(v);
                                if (!l.ok()) {
                                  bad = l.status();
                                  return false;
                                }
                                const uint64_t base = GetBE64(k.data() + 8) * chunk_;
                                for (const Slice& s : *l) {
                                  const uint64_t a = (base + s.off) / kSeekBlock * kSeekBlock;
                                  const uint64_t b =
                                      (base + s.end() + kSeekBlock - 1) / kSeekBlock * kSeekBlock;
                                  if (b <= pos) continue;
                                  if (whence == SEEK_DATA) {
                                    found = std::max(a, off);
                                    return false;
                                  }
                                  if (a > pos) {  // a hole before this run
                                    found = pos;
                                    return false;
                                  }
                                  pos = b;
                                }
                                return pos < n.size;
                              }));
  DBFS_RETURN_IF_ERROR(bad);
  if (whence == SEEK_DATA) {
    if (!found || *found >= n.size) return Status(Code::kErrno, "no data past offset", ENXIO);
    return *found;
  }
  // The end of file is a hole (the virtual one every file ends with).
  return std::min(found.value_or(pos), n.size);
}

Result<size_t> Engine::CopyFileRange(const Caller& c, uint64_t in, uint64_t fh_in, uint64_t off_in,
                                     uint64_t out, uint64_t fh_out, uint64_t off_out, size_t len) {
  constexpr size_t kStep = 1 << 20;
  std::string buf;
  size_t done = 0;
  while (done < len) {
    const size_t want = std::min(kStep, len - done);
    buf.resize(want);
    DBFS_ASSIGN_OR_RETURN(size_t got, Read(c, in, fh_in, off_in + done, want, buf.data()));
    if (got == 0) break;
    DBFS_ASSIGN_OR_RETURN(size_t put,
                          Write(c, out, fh_out, off_out + done, buf.data(), got, WriteOrigin::kDirect));
    done += put;
    if (got < want) break;
  }
  return done;
}

}  // namespace dbfs
