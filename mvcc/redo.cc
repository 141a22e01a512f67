#include "mvcc/redo.h"

#include "kvstore/coding.h"

namespace dbfs::mvcc {

std::string EncodeRedo(Csn csn, uint64_t max_ino, const std::vector<Write>& writes) {
  size_t n = 20;
  for (const auto& w : writes) n += 10 + w.key.size() + (w.value ? w.value->size() + 4 : 0);
  std::string out;
  out.reserve(n);
  PutLE64(&out, csn);
  PutLE64(&out, max_ino);
  PutLE32(&out, static_cast<uint32_t>(writes.size()));
  for (const auto& w : writes) {
    PutU8(&out, static_cast<uint8_t>(w.table));
    PutBytes(&out, w.key);
    PutU8(&out, w.value ? 1 : 0);
    if (w.value) PutBytes(&out, *w.value);
  }
  return out;
}

void PatchRedoCsn(std::string* redo, Csn csn) { EncodeLE64(redo->data() + kRedoCsnOffset, csn); }

Result<Redo> DecodeRedo(std::string_view payload) {
  Decoder d(payload);
  Redo r;
  uint32_t count = 0;
  if (!d.LE64(&r.csn) || !d.LE64(&r.max_ino) || !d.LE32(&count)) {
    return Status::Corruption("commit record too short");
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
