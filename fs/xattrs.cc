// Extended attributes: user., trusted. (root) and security. namespaces;
// system.* (POSIX ACLs) is answered with EOPNOTSUPP.
#include <sys/xattr.h>

#include "fs/engine.h"

namespace dbfs {

namespace {

constexpr size_t kXattrNameMax = 255;
constexpr size_t kXattrSizeMax = 65536;

Status CheckXattrName(std::string_view name) {
  if (name.empty()) return Status::Invalid("empty xattr name");
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  if (name.starts_with("system."))
    return Status::NotSupported("system.* attributes are not supported");
  if (!name.starts_with("user.") && !name.starts_with("trusted.") &&
      !name.starts_with("security.")) {
    return Status::NotSupported("unknown xattr namespace");
  }
  return Status::Ok();
}

}  // namespace

Status Engine::SetXattr(const Caller& c, uint64_t ino, std::string_view name,
                        std::string_view value, int flags) {
  DBFS_RETURN_IF_ERROR(CheckXattrName(name));
  if (value.size() > kXattrSizeMax) return Status(Code::kErrno, "xattr value too large", E2BIG);
  if (name.starts_with("trusted.") && c.uid != 0)
    return Status(Code::kPermission, "trusted.* needs root");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  if (name.starts_with("user.") && !n.IsDir() && !n.IsReg()) {
    return Status(Code::kPermission, "user.* attributes only on files and directories");
  }
  std::string key = NameKey(ino, name);
  DBFS_ASSIGN_OR_RETURN(auto old, t.Get(Table::kXattrs, key));
  if ((flags & XATTR_CREATE) && old) return Status::Exists("attribute exists");
  if ((flags & XATTR_REPLACE) && !old) return Status(Code::kNoData, "no such attribute");
  t.Put(Table::kXattrs, std::move(key), std::string(value));
  n.ctime = Now();
  StoreInode(t, ino, n);
  return Finish(op);
}

Result<std::string> Engine::GetXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  DBFS_ASSIGN_OR_RETURN(auto v, t.Get(Table::kXattrs, NameKey(ino, name)));
  if (!v) return Status(Code::kNoData, "no such attribute");
  return std::move(*v);
}

Result<std::string> Engine::ListXattr(const Caller& c, uint64_t ino) {
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {}, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  std::string out;
  DBFS_RETURN_IF_ERROR(t.Scan(Table::kXattrs, InoKey(ino), InoKey(ino + 1),
                              [&](std::string_view k, std::string_view) {
                                out.append(k.substr(8, k.size() - 9));
                                out.push_back('\0');
                                return true;
                              }));
  return out;
}

Status Engine::RemoveXattr(const Caller& c, uint64_t ino, std::string_view name) {
  if (name.size() > kXattrNameMax) return Status(Code::kRange, "xattr name too long");
  if (name.starts_with("trusted.") && c.uid != 0)
    return Status(Code::kPermission, "trusted.* needs root");
  DBFS_ASSIGN_OR_RETURN(OpScope op, BeginOp(c, {ino}));
  Transaction& t = op.t();
  DBFS_ASSIGN_OR_RETURN(Inode n, LoadInode(t, ino));
  std::string key = NameKey(ino, name);
  DBFS_ASSIGN_OR_RETURN(auto old, t.Get(Table::kXattrs, key));
  if (!old) return Status(Code::kNoData, "no such attribute");
  t.Delete(Table::kXattrs, std::move(key));
  n.ctime = Now();
  StoreInode(t, ino, n);
  return Finish(op);
}

}  // namespace dbfs
