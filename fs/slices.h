// Editing the slice list of one file chunk (format: fs/inode_format.h): a
// sorted, non-overlapping list of {offset in chunk, length, data location}.
// Bytes of the chunk no slice covers are holes (zeros).
#pragma once

#include <cstdint>

#include "fs/inode_format.h"

namespace dbfs {

// Inserts `n` into a chunk's slice list, cutting what it overwrites.
// Returns the number of bytes that were holes before. In place: random
// writes call this on lists of up to a few hundred slices, once per write.
uint64_t InsertSlice(SliceList* l, const Slice& n);

// Removes [off, end) from a slice list. Returns the bytes removed.
uint64_t RemoveRange(SliceList* l, uint32_t off, uint32_t end);

}  // namespace dbfs
