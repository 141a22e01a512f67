#include "mvcc/superblock.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "kvstore/coding.h"
#include "wal/crc32c.h"

namespace dbfs {
namespace {

static_assert(sizeof(kSuperblockMagic) == 6);
static_assert(kSuperblockMagicOffset + sizeof(kSuperblockMagic) <= kSuperblockVersionOffset);
static_assert(kSuperblockVersionOffset + 4 == kSuperblockBlockSizeOffset);
static_assert(kSuperblockBlockSizeOffset + 4 == kSuperblockChunkSizeOffset);
static_assert(kSuperblockChunkSizeOffset + 4 + 4 == kSuperblockCreatedOffset);  // + pad u32
static_assert(kSuperblockCreatedOffset + 8 == kSuperblockUuidOffset);
static_assert(kSuperblockUuidOffset + kSuperblockUuidSize == kSuperblockReservedOffset);
static_assert(kSuperblockReservedOffset == 48);
static_assert(kSuperblockCrcOffset == 508 && kSuperblockCrcOffset + 4 == kSuperblockSize);
static_assert(kSuperblockSize == 512);

constexpr char kTempFileName[] = "superblock.tmp";

// Owns one file descriptor; closes it (ignoring errors) unless Close() was
// called to check the error.
class ScopedFd {
 public:
  explicit ScopedFd(int fd) : fd_(fd) {}
  ~ScopedFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  ScopedFd(const ScopedFd&) = delete;
  ScopedFd& operator=(const ScopedFd&) = delete;
  int get() const { return fd_; }
  // Closes and reports the error (close can report a delayed write error).
  Status Close(std::string_view what) {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return Status::FromErrno(errno, what);
    return Status::Ok();
  }

 private:
  int fd_;
};

std::string Join(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

bool IsPowerOfTwo(uint32_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Returns an empty string if the geometry is acceptable, else what is wrong.
std::string GeometryProblem(uint32_t block_size, uint32_t chunk_size) {
  if (!IsPowerOfTwo(block_size) || block_size < kMinBlockSize) {
    return "invalid block size " + std::to_string(block_size);
  }
  if (!IsPowerOfTwo(chunk_size) || chunk_size < block_size || chunk_size > kMaxChunkSize) {
    return "invalid chunk size " + std::to_string(chunk_size);
  }
  return "";
}

// Fills `buf` with `n` random bytes; false if the kernel cannot.
bool RandomBytes(unsigned char* buf, size_t n) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = ::getrandom(buf + done, n - done, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    done += static_cast<size_t>(r);
  }
  if (done == n) return true;
  // getrandom(2) missing (ENOSYS under an old seccomp filter): fall back.
  int fd = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  ScopedFd guard(fd);
  done = 0;
  while (done < n) {
    ssize_t r = ::read(fd, buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

Status WriteAll(int fd, const char* p, size_t n, const std::string& path) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "write " + path);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Reads up to `max` bytes (fewer only at EOF).
Result<std::string> ReadUpTo(int fd, size_t max, const std::string& path) {
  std::string out(max, '\0');
  size_t got = 0;
  while (got < max) {
    ssize_t r = ::read(fd, out.data() + got, max - got);
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(errno, "read " + path);
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

}  // namespace

std::string Superblock::UuidString() const {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  s.reserve(36);
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    const auto b = static_cast<unsigned char>(uuid[i]);
    s += kHex[b >> 4];
    s += kHex[b & 0xf];
  }
  return s;
}

Superblock NewSuperblock() {
  Superblock sb;
  unsigned char u[kSuperblockUuidSize];
  if (!RandomBytes(u, sizeof(u))) {
    // No randomness means no unique volume identity; nothing sane to do.
    std::fprintf(stderr, "dbfs: cannot read random bytes for a volume uuid: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  u[6] = static_cast<unsigned char>((u[6] & 0x0f) | 0x40);  // RFC 4122 version 4
  u[8] = static_cast<unsigned char>((u[8] & 0x3f) | 0x80);  // RFC 4122 variant
  sb.uuid.assign(reinterpret_cast<const char*>(u), sizeof(u));
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  sb.created_ns =
      static_cast<uint64_t>(ts.tv_sec) * 1000000000u + static_cast<uint64_t>(ts.tv_nsec);
  return sb;
}

// Layout of the 512-byte superblock (all integers little-endian):
//   offset size  field
//        0    6  magic "DBFS01"
//        6    2  pad (zero)
//        8    4  format_version  u32
//       12    4  block_size      u32
//       16    4  chunk_size      u32
//       20    4  pad (zero)
//       24    8  created_ns      u64 (CLOCK_REALTIME)
//       32   16  uuid            raw bytes
//       48  460  reserved (zero)
//      508    4  crc32c          u32, CRC-32C (unmasked) of bytes [0, 508)
std::string EncodeSuperblock(const Superblock& sb) {
  std::string b(kSuperblockSize, '\0');
  std::memcpy(b.data() + kSuperblockMagicOffset, kSuperblockMagic, sizeof(kSuperblockMagic));
  EncodeLE32(b.data() + kSuperblockVersionOffset, sb.format_version);
  EncodeLE32(b.data() + kSuperblockBlockSizeOffset, sb.block_size);
  EncodeLE32(b.data() + kSuperblockChunkSizeOffset, sb.chunk_size);
  EncodeLE64(b.data() + kSuperblockCreatedOffset, sb.created_ns);
  std::memcpy(b.data() + kSuperblockUuidOffset, sb.uuid.data(),
              std::min(sb.uuid.size(), kSuperblockUuidSize));
  EncodeLE32(b.data() + kSuperblockCrcOffset, wal::Crc32c(b.data(), kSuperblockCrcOffset));
  return b;
}

Result<Superblock> DecodeSuperblock(std::string_view block, const std::string& volume_dir) {
  if (block.size() != kSuperblockSize ||
      std::memcmp(block.data() + kSuperblockMagicOffset, kSuperblockMagic,
                  sizeof(kSuperblockMagic)) != 0) {
    return Status::Invalid(volume_dir + " is not a DBFS volume (bad magic)");
  }
  const uint32_t stored_crc = DecodeLE32(block.data() + kSuperblockCrcOffset);
  if (wal::Crc32c(block.data(), kSuperblockCrcOffset) != stored_crc) {
    return Status::Corruption(volume_dir + ": superblock checksum mismatch; run fsck.dbfs");
  }
  Superblock sb;
  sb.format_version = DecodeLE32(block.data() + kSuperblockVersionOffset);
  if (sb.format_version < kMinFormatVersion || sb.format_version > kFormatVersion) {
    return Status::NotSupported(volume_dir + ": format version " +
                                std::to_string(sb.format_version) +
                                " is not supported (this build supports " +
                                std::to_string(kMinFormatVersion) + " to " +
                                std::to_string(kFormatVersion) + ")");
  }
  sb.block_size = DecodeLE32(block.data() + kSuperblockBlockSizeOffset);
  sb.chunk_size = DecodeLE32(block.data() + kSuperblockChunkSizeOffset);
  sb.created_ns = DecodeLE64(block.data() + kSuperblockCreatedOffset);
  sb.uuid.assign(block.data() + kSuperblockUuidOffset, kSuperblockUuidSize);
  // The CRC matched, so this was written by a buggy or hostile writer, not torn.
  if (std::string p = GeometryProblem(sb.block_size, sb.chunk_size); !p.empty()) {
    return Status::Corruption(volume_dir + ": superblock has " + p + "; run fsck.dbfs");
  }
  return sb;
}

Result<Superblock> ReadSuperblock(const std::string& volume_dir) {
  const std::string path = Join(volume_dir, kSuperblockFileName);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT || err == ENOTDIR) {
      struct stat st {};
      if (::stat(volume_dir.c_str(), &st) != 0) {
        return Status::FromErrno(errno, "volume " + volume_dir);
      }
      if (!S_ISDIR(st.st_mode)) {
        return Status(Code::kNotDir, volume_dir + " is not a directory", ENOTDIR);
      }
      return Status::NotFound(volume_dir + " is not a DBFS volume (no superblock)");
    }
    return Status::FromErrno(err, "open " + path);
  }
  ScopedFd guard(fd);
  // One byte more than a superblock, so an over-long file is detected.
  DBFS_ASSIGN_OR_RETURN(std::string block, ReadUpTo(fd, kSuperblockSize + 1, path));
  return DecodeSuperblock(block, volume_dir);
}

Status WriteSuperblock(const std::string& volume_dir, const Superblock& sb) {
  if (sb.uuid.size() != kSuperblockUuidSize) {
    return Status::Invalid("superblock uuid must be 16 bytes, not " +
                           std::to_string(sb.uuid.size()));
  }
  if (std::string p = GeometryProblem(sb.block_size, sb.chunk_size); !p.empty()) {
    return Status::Invalid("superblock has " + p);
  }
  const std::string block = EncodeSuperblock(sb);
  const std::string tmp = Join(volume_dir, kTempFileName);
  const std::string path = Join(volume_dir, kSuperblockFileName);

  int dfd = ::open(volume_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return Status::FromErrno(errno, "open volume directory " + volume_dir);
  ScopedFd dir(dfd);

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::FromErrno(errno, "create " + tmp);
  ScopedFd file(fd);
  Status s = WriteAll(fd, block.data(), block.size(), tmp);
  // Without this fsync the rename below could reach the disk before the data,
  // and a power loss would leave a superblock of zeros (or of nothing).
  if (s.ok() && ::fsync(fd) != 0) s = Status::FromErrno(errno, "fsync " + tmp);
  if (s.ok()) s = file.Close("close " + tmp);
  if (s.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    s = Status::FromErrno(errno, "rename " + tmp + " to " + path);
  }
  if (!s.ok()) {
    ::unlink(tmp.c_str());  // best effort: a stale temp file is harmless and overwritten next time
    return s;
  }
  // Without this fsync a power loss could undo the rename: the volume would
  // come back with the old superblock (or none, right after mkfs).
  if (::fsync(dir.get()) != 0) return Status::FromErrno(errno, "fsync directory " + volume_dir);
  return dir.Close("close directory " + volume_dir);
}

}  // namespace dbfs
