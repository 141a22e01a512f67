// WriteEdges (fs/write_edges.h): which bytes of a written-back mapped page
// are stale edges of an earlier write.
#include "fs/write_edges.h"

#include <gtest/gtest.h>

namespace dbfs {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

TEST(WriteEdgesTest, EdgeRangesAreThePartsThatAreNotWholePages) {
  EXPECT_EQ(WriteEdges::EdgeRanges(0, 8192), Ranges{});
  EXPECT_EQ(WriteEdges::EdgeRanges(100, 50), (Ranges{{100, 150}}));       // inside one page
  EXPECT_EQ(WriteEdges::EdgeRanges(0, 5000), (Ranges{{4096, 5000}}));     // aligned start
  EXPECT_EQ(WriteEdges::EdgeRanges(1000, 3096), (Ranges{{1000, 4096}}));  // aligned end
  EXPECT_EQ(WriteEdges::EdgeRanges(1000, 10000), (Ranges{{1000, 4096}, {8192, 11000}}));
  EXPECT_EQ(WriteEdges::EdgeRanges(4000, 200), (Ranges{{4000, 4096}, {4096, 4200}}));
  EXPECT_EQ(WriteEdges::EdgeRanges(7, 0), Ranges{});
}

TEST(WriteEdgesTest, BytesStillHoldingOverwrittenValuesAreNotApplied) {
  WriteEdges e;
  // A write at 4000..4200 replaced "a"s there.
  e.Record(9, 4000, std::string(96, 'a'));
  e.Record(9, 4096, std::string(104, 'a'));
  // A stale page 4096..8192 comes back: its first 104 bytes still 'a' (read
  // before the write), a mapped store put 'm' at 5000..5010.
  std::string page(4096, 'z');
  page.replace(0, 104, std::string(104, 'a'));
  page.replace(5000 - 4096, 10, std::string(10, 'm'));
  EXPECT_EQ(e.RunsToApply(9, 4096, page), (Ranges{{4200, 8192}}));
  // A page read after the write (holding the new bytes) is applied whole.
  std::string fresh(4096, 'n');
  EXPECT_EQ(e.RunsToApply(9, 4096, fresh), (Ranges{{4096, 8192}}));
  // Other inodes, and the inode once forgotten, are not affected.
  EXPECT_EQ(e.RunsToApply(8, 4096, page), (Ranges{{4096, 8192}}));
  EXPECT_GT(e.bytes(), 0u);
  e.Forget(9);
  EXPECT_EQ(e.RunsToApply(9, 4096, page), (Ranges{{4096, 8192}}));
  EXPECT_EQ(e.bytes(), 0u);
}

TEST(WriteEdgesTest, APageReadAfterTheWriteIsNeverStale) {
  WriteEdges e;
  e.Committed(3, e.Record(3, 4000, std::string(96, 'a')), /*csn=*/10);
  std::string page(4096, 'a');  // holds 'a' where the write replaced 'a'...
  // ...but the daemon served that page at csn 12, after the write: the 'a's
  // are the mapping's own stores (or the write's bytes), not stale.
  e.NoteFill(3, 0, 1, 12);
  EXPECT_EQ(e.RunsToApply(3, 0, page), (Ranges{{0, 4096}}));
  // A page read at csn 8, before the write: its 'a's there are stale.
  e.NoteFill(3, 1, 2, 8);
  WriteEdges e2;
  e2.Committed(3, e2.Record(3, 4000, std::string(96, 'a')), 10);
  e2.NoteFill(3, 0, 1, 8);
  EXPECT_EQ(e2.RunsToApply(3, 0, page), (Ranges{{0, 4000}}));
}

TEST(WriteEdgesTest, AStoreInsideAnEdgeChangingTheByteIsApplied) {
  WriteEdges e;
  e.Record(1, 10, "xyz");
  // The mapping wrote 'q' over the old 'y' at 11: that byte goes through.
  EXPECT_EQ(e.RunsToApply(1, 8, std::string("..xqz..")), (Ranges{{8, 10}, {11, 12}, {13, 15}}));
}

}  // namespace
}  // namespace dbfs
