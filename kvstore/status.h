// Status and Result<T>: the error vocabulary of every DBFS layer.
//
// Engine code never throws on I/O or transaction paths; it returns a
// [[nodiscard]] Status or Result<T>. errno becomes a Status in one place
// (Status::FromErrno) and a Status becomes an errno in one place (ToErrno,
// used only at the FUSE boundary and by the tools).
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace dbfs {

enum class Code : int {
  kOk = 0,
  kNotFound,       // ENOENT
  kExists,         // EEXIST
  kNotDir,         // ENOTDIR
  kIsDir,          // EISDIR
  kNotEmpty,       // ENOTEMPTY
  kInvalid,        // EINVAL
  kPermission,     // EPERM
  kAccess,         // EACCES
  kNameTooLong,    // ENAMETOOLONG
  kNoData,         // ENODATA
  kNoSpace,        // ENOSPC
  kRange,          // ERANGE
  kTooBig,         // EFBIG
  kLoop,           // ELOOP
  kBusy,           // EBUSY
  kConflict,       // transaction lost a conflict (ECANCELED at the boundary)
  kDeadlock,       // EDEADLK
  kAgain,          // EAGAIN
  kReadOnly,       // EROFS: the volume went read-only after an I/O error
  kIOError,        // EIO
  kCorruption,     // damage found on disk (EIO at the boundary)
  kNotSupported,   // EOPNOTSUPP
  kTooManyLinks,   // EMLINK
  kCrossDevice,    // EXDEV
  kBadFd,          // EBADF
  kCompacted,      // a read at a version the store has already discarded (EIO at the boundary)
  kErrno,          // any other errno, kept in errno_
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string msg, int err = 0) : code_(code), errno_(err), msg_(std::move(msg)) {}

  static Status Ok() { return Status(); }
  static Status NotFound(std::string m = "not found") { return {Code::kNotFound, std::move(m)}; }
  static Status Exists(std::string m = "exists") { return {Code::kExists, std::move(m)}; }
  static Status Invalid(std::string m) { return {Code::kInvalid, std::move(m)}; }
  static Status IOError(std::string m, int err = EIO) { return {Code::kIOError, std::move(m), err}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status NoSpace(std::string m = "no space left on device") { return {Code::kNoSpace, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status NotSupported(std::string m) { return {Code::kNotSupported, std::move(m)}; }
  static Status ReadOnly(std::string m) { return {Code::kReadOnly, std::move(m)}; }
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status Compacted(std::string m) { return {Code::kCompacted, std::move(m)}; }

  // The one place errno becomes a Status. `what` says which call failed.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  // The one place a Status becomes an errno (positive value; 0 for ok).
  int ToErrno() const;
  std::string ToString() const;

  // Explicit, greppable "ignore this error".
  void IgnoreError() const {}

 private:
  Code code_ = Code::kOk;
  int errno_ = 0;
  std::string msg_;
};

inline Status Status::FromErrno(int err, std::string_view what) {
  std::string m = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case 0: return Status();
    case ENOENT: return {Code::kNotFound, std::move(m), err};
    case EEXIST: return {Code::kExists, std::move(m), err};
    case ENOTDIR: return {Code::kNotDir, std::move(m), err};
    case EISDIR: return {Code::kIsDir, std::move(m), err};
    case ENOTEMPTY: return {Code::kNotEmpty, std::move(m), err};
    case EINVAL: return {Code::kInvalid, std::move(m), err};
    case EPERM: return {Code::kPermission, std::move(m), err};
    case EACCES: return {Code::kAccess, std::move(m), err};
    case ENAMETOOLONG: return {Code::kNameTooLong, std::move(m), err};
    case ENODATA: return {Code::kNoData, std::move(m), err};
    case ENOSPC: case EDQUOT: return {Code::kNoSpace, std::move(m), err};
    case ERANGE: return {Code::kRange, std::move(m), err};
    case EFBIG: return {Code::kTooBig, std::move(m), err};
    case ELOOP: return {Code::kLoop, std::move(m), err};
    case EBUSY: return {Code::kBusy, std::move(m), err};
    case EDEADLK: return {Code::kDeadlock, std::move(m), err};
    case EAGAIN: return {Code::kAgain, std::move(m), err};
    case EROFS: return {Code::kReadOnly, std::move(m), err};
    case EIO: return {Code::kIOError, std::move(m), err};
    case EOPNOTSUPP: return {Code::kNotSupported, std::move(m), err};
    case EMLINK: return {Code::kTooManyLinks, std::move(m), err};
    case EXDEV: return {Code::kCrossDevice, std::move(m), err};
    case EBADF: return {Code::kBadFd, std::move(m), err};
    default: return {Code::kErrno, std::move(m), err};
  }
}

inline int Status::ToErrno() const {
  switch (code_) {
    case Code::kOk: return 0;
    case Code::kNotFound: return ENOENT;
    case Code::kExists: return EEXIST;
    case Code::kNotDir: return ENOTDIR;
    case Code::kIsDir: return EISDIR;
    case Code::kNotEmpty: return ENOTEMPTY;
    case Code::kInvalid: return EINVAL;
    case Code::kPermission: return EPERM;
    case Code::kAccess: return EACCES;
    case Code::kNameTooLong: return ENAMETOOLONG;
    case Code::kNoData: return ENODATA;
    case Code::kNoSpace: return ENOSPC;
    case Code::kRange: return ERANGE;
    case Code::kTooBig: return EFBIG;
    case Code::kLoop: return ELOOP;
    case Code::kBusy: return EBUSY;
    case Code::kConflict: return ECANCELED;
    case Code::kDeadlock: return EDEADLK;
    case Code::kAgain: return EAGAIN;
    case Code::kReadOnly: return EROFS;
    case Code::kIOError: return errno_ ? errno_ : EIO;
    case Code::kCorruption: return EIO;
    case Code::kNotSupported: return EOPNOTSUPP;
    case Code::kTooManyLinks: return EMLINK;
    case Code::kCrossDevice: return EXDEV;
    case Code::kBadFd: return EBADF;
    case Code::kCompacted: return EIO;
    case Code::kErrno: return errno_ ? errno_ : EIO;
  }
  return EIO;
}

inline std::string Status::ToString() const {
  if (ok()) return "OK";
  return msg_;
}

// Result<T>: a value or a non-ok Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status s) : v_(std::move(s)) {}     // NOLINT: implicit by design

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  Status TakeStatus() { return ok() ? Status() : std::move(std::get<Status>(v_)); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace dbfs

// Propagate a non-ok Status from an expression returning Status.
#define DBFS_RETURN_IF_ERROR(expr)            \
  do {                                        \
    ::dbfs::Status _dbfs_s = (expr);          \
    if (!_dbfs_s.ok()) return _dbfs_s;        \
  } while (0)

#define DBFS_CONCAT_INNER(a, b) a##b
#define DBFS_CONCAT(a, b) DBFS_CONCAT_INNER(a, b)
// auto x = DBFS_TRY(ResultExpr) is not portable; use:
//   DBFS_ASSIGN_OR_RETURN(auto x, ResultExpr);
#define DBFS_ASSIGN_OR_RETURN(lhs, expr)                         \
  auto DBFS_CONCAT(_dbfs_r_, __LINE__) = (expr);                 \
  if (!DBFS_CONCAT(_dbfs_r_, __LINE__).ok())                     \
    return DBFS_CONCAT(_dbfs_r_, __LINE__).TakeStatus();         \
  lhs = std::move(DBFS_CONCAT(_dbfs_r_, __LINE__)).value()
