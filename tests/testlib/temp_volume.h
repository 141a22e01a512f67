// A freshly made DBFS volume in a temp directory, removed with everything in
// it when the object goes away. For unit tests that open the volume with the
// FUSE-free Filesystem (tests/fuse) or check it with fsck (tests/tools).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>

#include "tools/lib/mkfs.h"

namespace dbfs::testing {

class TempVolume {
 public:
  // `tag` names the temp directory (/tmp/dbfs-TAG-XXXXXX); the volume is
  // its "vol" subdirectory. Check ok() (a gtest failure is recorded too).
  explicit TempVolume(const std::string& tag) {
    std::string tmpl = "/tmp/dbfs-" + tag + "-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp " << tmpl;
      return;
    }
    root_ = tmpl;
    dir_ = root_ + "/vol";
    MkfsOptions mo;
    mo.quiet = true;
    auto r = Mkfs(dir_, mo);
    ok_ = r.ok();
    if (!ok_) ADD_FAILURE() << "mkfs " << dir_ << ": " << r.status().ToString();
  }
  ~TempVolume() {
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }
  TempVolume(const TempVolume&) = delete;
  TempVolume& operator=(const TempVolume&) = delete;

  bool ok() const { return ok_; }
  const std::string& dir() const { return dir_; }    // the volume
  const std::string& root() const { return root_; }  // its temp parent

 private:
  std::string root_, dir_;
  bool ok_ = false;
};

}  // namespace dbfs::testing
