// The one include of libfuse's low-level API, so every file of the adapter
// compiles against the same FUSE_USE_VERSION (3.12: fuse_loop_cfg_*, rename
// flags, lseek, copy_file_range; the installed headers are 3.14).
#pragma once

#ifndef FUSE_USE_VERSION
#define FUSE_USE_VERSION 312
#endif
#include <fuse_lowlevel.h>
