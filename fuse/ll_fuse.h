// The one include of libfuse's low-level API, so every file of the adapter
// compiles against the same FUSE_USE_VERSION (3.17: fuse_loop_cfg_*, rename
// flags, lseek, copy_file_range, the 64-bit capability flags want_ext; the
// headers are the vendored libfuse 3.18.2's, third_party/libfuse).
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 317
#endif
#include <fuse_lowlevel.h>
