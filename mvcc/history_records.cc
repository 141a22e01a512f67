#include "mvcc/history_records.h"

#include "kvstore/coding.h"

namespace dbfs::mvcc {

std::string EncodeSnapshotRecord(const NamedSnapshot& s) {
  std::string v;
  PutU8(&v, kHistoryRecordFormat);
  PutLE64(&v, s.csn);
  PutLE64(&v, s.time_ns);
  PutLE32(&v, s.uid);
  return v;
}

Result<NamedSnapshot> DecodeSnapshotRecord(std::string_view name, std::string_view value) {
  Decoder d(value);
  NamedSnapshot s;
  s.name = std::string(name);
  uint8_t format = 0;
  if (!d.U8(&format) || format != kHistoryRecordFormat || !d.LE64(&s.csn) || !d.LE64(&s.time_ns) ||
      !d.LE32(&s.uid) || !d.empty()) {
    return Status::Corruption("snapshot record '" + s.name + "' is malformed");
  }
  if (name.empty() || name.size() > kSnapshotNameMax ||
      name.find_first_of(std::string_view("\0/", 2)) != std::string_view::npos) {
    return Status::Corruption("snapshot record has an invalid name");
  }
  return s;
}

std::string LogKey(Csn csn) {
  std::string k;
  PutBE64(&k, csn);
  return k;
}

std::string EncodeLogRecord(const CommitRecord& r) {
  std::string v;
  PutU8(&v, kHistoryRecordFormat);
  PutLE64(&v, r.time_ns);
  PutLE32(&v, r.meta.uid);
  PutLE32(&v, static_cast<uint32_t>(r.meta.pid));
  PutLE64(&v, r.meta.tx);
  PutLE32(&v, r.meta.flags);
  PutBytes(&v, r.meta.comm);
  PutBytes(&v, r.meta.tx_cmd);
  PutLE32(&v, static_cast<uint32_t>(r.keys.size()));
  for (const KeyRef& k : r.keys) {
    PutU8(&v, static_cast<uint8_t>(k.table));
    PutBytes(&v, k.key);
  }
  return v;
}

Result<CommitRecord> DecodeLogRecord(std::string_view key, std::string_view value) {
  if (key.size() != 8) return Status::Corruption("commit log key is not 8 bytes");
  CommitRecord r;
  r.csn = GetBE64(key.data());
  Decoder d(value);
  uint8_t format = 0;
  uint32_t pid = 0, n = 0;
  std::string_view comm, cmd;
  if (!d.U8(&format) || format != kHistoryRecordFormat || !d.LE64(&r.time_ns) ||
      !d.LE32(&r.meta.uid) || !d.LE32(&pid) || !d.LE64(&r.meta.tx) || !d.LE32(&r.meta.flags) ||
      !d.Bytes(&comm) || !d.Bytes(&cmd) || !d.LE32(&n) || n > value.size()) {
    return Status::Corruption("commit log entry " + std::to_string(r.csn) + " is malformed");
  }
  r.meta.pid = static_cast<int32_t>(pid);
  r.meta.comm = std::string(comm);
  r.meta.tx_cmd = std::string(cmd);
  r.keys.reserve(n);
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t t = 0;
    std::string_view k;
    if (!d.U8(&t) || t >= kNumTables || !d.Bytes(&k)) {
      return Status::Corruption("commit log entry " + std::to_string(r.csn) + " is malformed");
    }
    r.keys.push_back(KeyRef{static_cast<Table>(t), std::string(k)});
  }
  if (!d.empty()) return Status::Corruption("commit log entry has trailing bytes");
  return r;
}

}  // namespace dbfs::mvcc
