// The libfuse low-level operation table of DBFS (handlers in fuse/ops/).
#pragma once

#include "fuse/ll_fuse.h"

namespace dbfs::fuse {

// The table to pass to fuse_session_new; userdata must be a dbfs::fuse::Adapter.
const fuse_lowlevel_ops& Operations();

}  // namespace dbfs::fuse
