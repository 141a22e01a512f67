#include "mvcc/redo.h"

#include "kvstore/coding.h"

namespace dbfs::mvcc {

namespace {

std::string Encode(Csn csn, uint64_t max_ino, const std::vector<Write>& writes,
                   const CommitMeta* meta) {
  size_t n = 20 + (meta ? 40 + meta->comm.size() + meta->tx_cmd.size() : 0);
  for (const auto& w : writes) n += 10 + w.key.size() + (w.value ? w.value->size() + 4 : 0);
  std::string out;
  out.reserve(n);
  PutLE64(&out, csn);
  PutLE64(&out, max_ino);
  PutLE32(&out, static_cast<uint32_t>(writes.size()) | (meta ? kRedoHasMeta : 0));
  if (meta) {
    PutLE64(&out, 0);  // time: PatchRedoTime
    PutLE32(&out, meta->uid);
    PutLE32(&out, static_cast<uint32_t>(meta->pid));
    PutLE64(&out, meta->tx);
    PutLE32(&out, meta->flags);
    PutBytes(&out, meta->comm);
    PutBytes(&out, meta->tx_cmd);
  }
  for (const auto& w : writes) {
    PutU8(&out, static_cast<uint8_t>(w.table));
    PutBytes(&out, w.key);
    PutU8(&out, w.value ? 1 : 0);
    if (w.value) PutBytes(&out, *w.value);
  }
  return out;
}

}  // namespace

std::string EncodeRedo(Csn csn, uint64_t max_ino, const std::vector<Write>& writes,
                       const CommitMeta& meta) {
  return Encode(csn, max_ino, writes, &meta);
}

std::string EncodeRedoV1(Csn csn, uint64_t max_ino, const std::vector<Write>& writes) {
  return Encode(csn, max_ino, writes, nullptr);
}

void PatchRedoCsn(std::string* redo, Csn csn) { EncodeLE64(redo->data() + kRedoCsnOffset, csn); }

void PatchRedoTime(std::string* redo, uint64_t time_ns) {
  // Only a format-2 redo has the field (EncodeRedo always writes one).
  EncodeLE64(redo->data() + kRedoTimeOffset, time_ns);
}

Result<Redo> DecodeRedo(std::string_view payload) {
  Decoder d(payload);
  Redo r;
  uint32_t count = 0;
  if (!d.LE64(&r.csn) || !d.LE64(&r.max_ino) || !d.LE32(&count)) {
    return Status::Corruption("commit record too short");
  }
  if (count & kRedoHasMeta) {
    count &= ~kRedoHasMeta;
    r.has_meta = true;
    uint32_t pid = 0;
    std::string_view comm, tx_cmd;
    if (!d.LE64(&r.time_ns) || !d.LE32(&r.meta.uid) || !d.LE32(&pid) || !d.LE64(&r.meta.tx) ||
        !d.LE32(&r.meta.flags) || !d.Bytes(&comm) || !d.Bytes(&tx_cmd)) {
      return Status::Corruption("commit record metadata truncated");
    }
    r.meta.pid = static_cast<int32_t>(pid);
    r.meta.comm = std::string(comm);
    r.meta.tx_cmd = std::string(tx_cmd);
  }
  if (count > payload.size()) return Status::Corruption("commit record count implausible");
  r.writes.reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t table = 0, tag = 0;
    std::string_view key, value;
    if (!d.U8(&table) || !d.Bytes(&key) || !d.U8(&tag)) {
      return Status::Corruption("commit record truncated");
    }
    if (table >= kNumTables || tag > 1) return Status::Corruption("commit record has a bad table/tag");
    Write w{static_cast<Table>(table), std::string(key), std::nullopt};
    if (tag == 1) {
      if (!d.Bytes(&value)) return Status::Corruption("commit record truncated value");
      w.value = std::string(value);
    }
    r.writes.push_back(std::move(w));
  }
  if (!d.empty()) return Status::Corruption("commit record has trailing bytes");
  return r;
}

}  // namespace dbfs::mvcc
