// Framing of the Elle protocol (elle/protocol.h). The server itself is tested
// through a real mount by tests/integration/elle_test.sh.
#include "elle/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

namespace dbfs::elle::proto {
namespace {

struct Pair {
  int fd[2] = {-1, -1};
  Pair() { EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fd), 0); }
  ~Pair() {
    for (int f : fd) {
      if (f >= 0) close(f);
    }
  }
};

TEST(ElleProtocol, FrameLayoutIsBigEndian) {
  const std::string f = EncodeFrame(kAppendFile, 0x0102030405060708ull, "xy");
  ASSERT_EQ(f.size(), 4u + 9u + 2u);
  EXPECT_EQ(f.substr(0, 4), std::string("\0\0\0\x0b", 4));
  EXPECT_EQ(static_cast<uint8_t>(f[4]), kAppendFile);
  EXPECT_EQ(f.substr(5, 8), "\x01\x02\x03\x04\x05\x06\x07\x08");
  EXPECT_EQ(f.substr(13), "xy");
}

TEST(ElleProtocol, RoundTripsFramesAndResponses) {
  Pair p;
  ASSERT_TRUE(WriteAll(p.fd[0], EncodeFrame(kReadFile, 42, PathPayload("elle/k1"))).ok());
  auto f = ReadFrame(p.fd[1]);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->type, kReadFile);
  EXPECT_EQ(f->tx, 42u);
  std::string_view path, bytes;
  ASSERT_TRUE(ParsePathPayload(f->payload, &path, &bytes));
  EXPECT_EQ(path, "elle/k1");
  EXPECT_TRUE(bytes.empty());

  Response r{kConflict, 7, "conflict elle/k1", "data"};
  ASSERT_TRUE(WriteAll(p.fd[0], EncodeResponse(r)).ok());
  auto g = ReadFrame(p.fd[1]);
  ASSERT_TRUE(g.ok());
  Response back;
  ASSERT_TRUE(ParseResponse(*g, &back));
  EXPECT_EQ(back.status, kConflict);
  EXPECT_EQ(back.tx, 7u);
  EXPECT_EQ(back.msg, "conflict elle/k1");
  EXPECT_EQ(back.data, "data");
}

TEST(ElleProtocol, RejectsOversizeUndersizeAndTruncatedFrames) {
  {
    Pair p;
    std::string big;
    PutBE32(&big, kMaxFrame + 1);
    ASSERT_TRUE(WriteAll(p.fd[0], big).ok());
    EXPECT_EQ(ReadFrame(p.fd[1]).status().code(), Code::kInvalid);
  }
  {
    Pair p;
    std::string small;
    PutBE32(&small, 3);
    ASSERT_TRUE(WriteAll(p.fd[0], small + "abc").ok());
    EXPECT_EQ(ReadFrame(p.fd[1]).status().code(), Code::kInvalid);
  }
  {
    Pair p;
    const std::string f = EncodeFrame(kWriteFile, 1, PathPayload("a", "0123456789"));
    ASSERT_TRUE(WriteAll(p.fd[0], f.substr(0, f.size() - 3)).ok());
    close(p.fd[0]);
    p.fd[0] = -1;
    EXPECT_EQ(ReadFrame(p.fd[1]).status().code(), Code::kIOError);
  }
  {
    Pair p;
    close(p.fd[0]);
    p.fd[0] = -1;
    EXPECT_EQ(ReadFrame(p.fd[1]).status().code(), Code::kNotFound);  // clean EOF
  }
}

TEST(ElleProtocol, MalformedPathPayloads) {
  std::string_view path, bytes;
  EXPECT_FALSE(ParsePathPayload("", &path, &bytes));
  EXPECT_FALSE(ParsePathPayload(std::string("\x00", 1), &path, &bytes));
  EXPECT_FALSE(ParsePathPayload(std::string("\x00\x05" "abc", 5), &path, &bytes));
  ASSERT_TRUE(ParsePathPayload(PathPayload("k", "1 2 "), &path, &bytes));
  EXPECT_EQ(path, "k");
  EXPECT_EQ(bytes, "1 2 ");
  Frame f;
  f.type = kResponse;
  f.payload = std::string("\x00\x00\x09" "ab", 5);  // msg length beyond payload
  Response r;
  EXPECT_FALSE(ParseResponse(f, &r));
}

}  // namespace
}  // namespace dbfs::elle::proto
