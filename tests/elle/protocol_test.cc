// Framing of the Elle protocol (elle/protocol.h), and the server's connection
// handling (proto::Session, proto::ServeConnection: aliases, pipelined
// batches, bad frames mid-batch) over a socketpair against a fake engine. The
// server with the real engine is tested through a real mount by
// tests/integration/elle_test.sh.
#include "elle/protocol.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

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
  // The views point into the payload: keep it alive while they are used.
  const std::string payload = PathPayload("k", "1 2 ");
  ASSERT_TRUE(ParsePathPayload(payload, &path, &bytes));
  EXPECT_EQ(path, "k");
  EXPECT_EQ(bytes, "1 2 ");
  Frame f;
  f.type = kResponse;
  f.payload = std::string("\x00\x00\x09" "ab", 5);  // msg length beyond payload
  Response r;
  EXPECT_FALSE(ParseResponse(f, &r));
}

TEST(ElleProtocol, FrameReaderTakesSeveralFramesFromOneRead) {
  Pair p;
  const std::string a = EncodeFrame(kBeginTx, 5, std::string(1, '\0'));
  const std::string b = EncodeFrame(kReadFile, 5, PathPayload("k"));
  const std::string c = EncodeFrame(kCommitTx, 5, std::string(1, '\0'));
  ASSERT_TRUE(WriteAll(p.fd[0], a + b + c.substr(0, 6)).ok());
  FrameReader reader(p.fd[1]);
  Frame f;
  auto got = reader.Next(&f);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);  // nothing read yet
  ASSERT_TRUE(reader.Fill().ok());
  got = reader.Next(&f);
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(f.type, kBeginTx);
  got = reader.Next(&f);  // from the same read()
  ASSERT_TRUE(got.ok() && *got);
  EXPECT_EQ(f.type, kReadFile);
  EXPECT_EQ(f.tx, 5u);
  got = reader.Next(&f);
  ASSERT_TRUE(got.ok());
  EXPECT_FALSE(*got);  // the third frame is incomplete
  ASSERT_TRUE(WriteAll(p.fd[0], c.substr(6)).ok());
  auto third = reader.Read();
  ASSERT_TRUE(third.ok()) << third.status().ToString();
  EXPECT_EQ(third->type, kCommitTx);
  EXPECT_EQ(third->payload, std::string(1, '\0'));
  // A truncated frame at EOF is an IOError, a clean EOF NotFound.
  ASSERT_TRUE(WriteAll(p.fd[0], b.substr(0, 7)).ok());
  close(p.fd[0]);
  p.fd[0] = -1;
  EXPECT_EQ(reader.Read().status().code(), Code::kIOError);
}

TEST(ElleProtocol, FrameReaderRejectsBadLengthsAndReadsLargeFrames) {
  {
    Pair p;
    std::string big;
    PutBE32(&big, kMaxFrame + 1);
    ASSERT_TRUE(WriteAll(p.fd[0], EncodeFrame(kReadFile, 0, PathPayload("k")) + big).ok());
    FrameReader reader(p.fd[1]);
    ASSERT_TRUE(reader.Read().ok());
    EXPECT_EQ(reader.Read().status().code(), Code::kInvalid);
  }
  {
    Pair p;
    const std::string payload = PathPayload("k", std::string(1 << 20, 'x'));
    const std::string f = EncodeFrame(kWriteFile, 1, payload);
    std::thread writer([&] { ASSERT_TRUE(WriteAll(p.fd[0], f + f).ok()); });
    FrameReader reader(p.fd[1]);
    for (int i = 0; i < 2; ++i) {
      auto got = reader.Read();
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_EQ(got->payload, payload);
    }
    writer.join();
  }
}

// An in-memory transactional store: snapshot reads, buffered writes,
// first-committer-wins on written keys. Paths containing "fail" fail.
class FakeBackend final : public Backend {
 public:
  Result<uint64_t> Begin(bool) override {
    std::lock_guard g(mu_);
    const uint64_t id = next_id_++;
    txs_[id] = Tx{data_, {}, version_};
    ++begun_;
    return id;
  }
  Result<std::string> Commit(uint64_t tx, bool) override {
    std::lock_guard g(mu_);
    auto it = txs_.find(tx);
    if (it == txs_.end()) return Status::Invalid("no such transaction");
    Tx t = std::move(it->second);
    txs_.erase(it);
    for (const auto& key : t.written) {
      if (written_at_[key] > t.start) return std::string("conflict on ") + key;
    }
    ++version_;
    for (const auto& key : t.written) {
      data_[key] = t.view[key];
      written_at_[key] = version_;
    }
    ++committed_;
    return std::string("ok");
  }
  Status Abort(uint64_t tx) override {
    std::lock_guard g(mu_);
    if (txs_.erase(tx) == 0) return Status::Invalid("no such transaction");
    ++aborted_;
    return Status::Ok();
  }
  Status FileOp(uint64_t tx, uint8_t type, std::string_view path, std::string_view bytes,
                std::string* out) override {
    std::lock_guard g(mu_);
    if (path.empty() || path.front() == '/') return Status::Invalid("invalid path");
    if (path.find("fail") != std::string_view::npos) return Status::IOError("injected failure");
    std::map<std::string, std::string>* view = &data_;
    Tx* t = nullptr;
    if (tx != 0) {
      auto it = txs_.find(tx);
      if (it == txs_.end()) return Status::Invalid("operation outside its transaction");
      t = &it->second;
      view = &t->view;
    }
    const std::string key(path);
    if (type == kReadFile) {
      auto it = view->find(key);
      if (it == view->end()) return Status::NotFound("no such file");
      *out = it->second;
      return Status::Ok();
    }
    if (type == kWriteFile) (*view)[key].clear();
    (*view)[key].append(bytes);
    if (t != nullptr) t->written.insert(key);
    return Status::Ok();
  }

  std::string Get(const std::string& key) {
    std::lock_guard g(mu_);
    auto it = data_.find(key);
    return it == data_.end() ? "<none>" : it->second;
  }
  int open() {
    std::lock_guard g(mu_);
    return static_cast<int>(txs_.size());
  }
  int committed() {
    std::lock_guard g(mu_);
    return committed_;
  }
  int begun() {
    std::lock_guard g(mu_);
    return begun_;
  }

 private:
  struct Tx {
    std::map<std::string, std::string> view;
    std::set<std::string> written;
    uint64_t start = 0;
  };
  std::mutex mu_;
  std::map<std::string, std::string> data_;
  std::map<std::string, uint64_t> written_at_;
  std::map<uint64_t, Tx> txs_;
  uint64_t next_id_ = 1000;
  uint64_t version_ = 0;
  int begun_ = 0, committed_ = 0, aborted_ = 0;
};

// A server connection (ServeConnection + Session over a FakeBackend) on one
// end of a socketpair; the test is the client on the other.
class ServerConn {
 public:
  explicit ServerConn(FakeBackend* backend) {
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fd_), 0);
    thread_ = std::thread([this, backend] {
      {
        Session session(backend);
        ServeConnection(fd_[1], stop_, [&](const Frame& f, std::string* out) {
          AppendResponse(out, session.Handle(f));
          return true;
        });
      }  // the session aborts what is still open, as when a connection ends
      close(fd_[1]);
      done_ = true;
    });
    reader_ = std::make_unique<FrameReader>(fd_[0]);
  }
  ~ServerConn() { Close(); }

  void Send(const std::string& bytes) { ASSERT_TRUE(WriteAll(fd_[0], bytes).ok()); }
  // The next response; status 0xff if the server closed the connection.
  Response Next() {
    Response r;
    r.status = 0xff;
    auto f = reader_->Read();
    if (!f.ok()) return r;
    EXPECT_TRUE(ParseResponse(*f, &r));
    return r;
  }
  // Hangs up and waits for the server side to finish.
  void Close() {
    if (fd_[0] >= 0) {
      shutdown(fd_[0], SHUT_WR);
      if (thread_.joinable()) thread_.join();
      close(fd_[0]);
      fd_[0] = -1;
    }
  }
  bool done() const { return done_; }

 private:
  int fd_[2] = {-1, -1};
  std::atomic<bool> stop_{false};
  std::atomic<bool> done_{false};
  std::thread thread_;
  std::unique_ptr<FrameReader> reader_;
};

std::string Iso(bool serializable = true) { return std::string(1, serializable ? '\0' : '\1'); }
std::string Flags() { return std::string(1, '\0'); }

TEST(ElleServer, PipelinedTransactionInOneWriteCommitsAndReadsItsWrites) {
  FakeBackend be;
  ServerConn c(&be);
  std::string batch = EncodeFrame(kBeginTx, 7, Iso());
  batch += EncodeFrame(kAppendFile, 7, PathPayload("elle/k1", "1 "));
  batch += EncodeFrame(kReadFile, 7, PathPayload("elle/k1"));
  batch += EncodeFrame(kAppendFile, 7, PathPayload("elle/k1", "2 "));
  batch += EncodeFrame(kReadFile, 7, PathPayload("elle/k1"));
  batch += EncodeFrame(kReadFile, 7, PathPayload("elle/k2"));  // missing: benign
  batch += EncodeFrame(kCommitTx, 7, Flags());
  c.Send(batch);
  const std::vector<std::pair<uint8_t, std::string>> want = {
      {kOk, ""}, {kOk, ""}, {kOk, "1 "}, {kOk, ""}, {kOk, "1 2 "}, {kNotFound, ""}, {kOk, ""}};
  for (size_t i = 0; i < want.size(); ++i) {
    Response r = c.Next();
    EXPECT_EQ(r.status, want[i].first) << "response " << i << ": " << r.msg;
    EXPECT_EQ(r.tx, 7u) << "response " << i << " carries the alias";
    EXPECT_EQ(r.data, want[i].second) << "response " << i;
  }
  EXPECT_EQ(be.Get("elle/k1"), "1 2 ");
  EXPECT_EQ(be.committed(), 1);
  EXPECT_EQ(be.open(), 0);

  // Without an alias the server's id comes back as before, and two pipelined
  // transactions on one connection stay apart.
  c.Send(EncodeFrame(kBeginTx, 0, Iso()));
  const uint64_t id = c.Next().tx;
  EXPECT_NE(id, 0u);
  EXPECT_NE(id, 7u);
  batch = EncodeFrame(kBeginTx, 8, Iso(false));
  batch += EncodeFrame(kAppendFile, id, PathPayload("elle/k3", "a "));
  batch += EncodeFrame(kAppendFile, 8, PathPayload("elle/k4", "b "));
  batch += EncodeFrame(kAbortTx, id, "");
  batch += EncodeFrame(kCommitTx, 8, Flags());
  c.Send(batch);
  for (uint64_t tx : {8ull, static_cast<unsigned long long>(id), 8ull,
                      static_cast<unsigned long long>(id), 8ull}) {
    Response r = c.Next();
    EXPECT_EQ(r.status, kOk) << r.msg;
    EXPECT_EQ(r.tx, tx);
  }
  EXPECT_EQ(be.Get("elle/k3"), "<none>");
  EXPECT_EQ(be.Get("elle/k4"), "b ");
}

TEST(ElleServer, AliasReuseWhileOpenIsRefused) {
  FakeBackend be;
  ServerConn c(&be);
  std::string batch = EncodeFrame(kBeginTx, 5, Iso());
  batch += EncodeFrame(kAppendFile, 5, PathPayload("k", "old "));
  batch += EncodeFrame(kBeginTx, 5, Iso());  // reuse while open
  batch += EncodeFrame(kAppendFile, 5, PathPayload("k", "new "));
  batch += EncodeFrame(kCommitTx, 5, Flags());
  c.Send(batch);
  EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(c.Next().status, kOk);
  Response r = c.Next();
  EXPECT_EQ(r.status, kBadRequest);
  EXPECT_EQ(r.tx, 5u);
  EXPECT_NE(r.msg.find("open"), std::string::npos) << r.msg;
  // The frames meant for the refused transaction do not run in the old one.
  EXPECT_EQ(c.Next().status, kConflict);
  EXPECT_EQ(c.Next().status, kConflict);
  EXPECT_EQ(be.Get("k"), "<none>");
  EXPECT_EQ(be.open(), 0);
  EXPECT_EQ(be.begun(), 1);
  // Once closed, the alias may be used again.
  c.Send(EncodeFrame(kBeginTx, 5, Iso()) + EncodeFrame(kAppendFile, 5, PathPayload("k", "x ")) +
         EncodeFrame(kCommitTx, 5, Flags()));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(be.Get("k"), "x ");
}

TEST(ElleServer, FailingOpInPipelinedBatchFailsTheRestAndTheCommit) {
  FakeBackend be;
  ServerConn c(&be);
  std::string batch = EncodeFrame(kBeginTx, 9, Iso());
  batch += EncodeFrame(kAppendFile, 9, PathPayload("k1", "1 "));
  batch += EncodeFrame(kAppendFile, 9, PathPayload("fail/x", "2 "));  // the engine fails it
  batch += EncodeFrame(kReadFile, 9, PathPayload("k1"));
  batch += EncodeFrame(kAppendFile, 9, PathPayload("k2", "3 "));
  batch += EncodeFrame(kCommitTx, 9, Flags());
  c.Send(batch);
  EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(c.Next().status, kOk);
  Response r = c.Next();
  EXPECT_EQ(r.status, kError);
  EXPECT_EQ(r.msg, "injected failure");
  for (int i = 0; i < 2; ++i) {
    r = c.Next();
    EXPECT_EQ(r.status, kConflict) << i;
    EXPECT_TRUE(r.data.empty());
  }
  r = c.Next();
  EXPECT_EQ(r.status, kConflict) << "the commit of a batch with a failed op";
  EXPECT_NE(r.msg.find("injected failure"), std::string::npos) << r.msg;
  EXPECT_EQ(be.Get("k1"), "<none>");
  EXPECT_EQ(be.Get("k2"), "<none>");
  EXPECT_EQ(be.committed(), 0);
  EXPECT_EQ(be.open(), 0);

  // A malformed request inside a transaction fails it the same way.
  batch = EncodeFrame(kBeginTx, 10, Iso());
  batch += EncodeFrame(kAppendFile, 10, PathPayload("k1", "1 "));
  batch += EncodeFrame(kAppendFile, 10, std::string("\x00\x09" "ab", 4));  // path beyond payload
  batch += EncodeFrame(kCommitTx, 10, Flags());
  c.Send(batch);
  EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(c.Next().status, kBadRequest);
  EXPECT_EQ(c.Next().status, kConflict);
  EXPECT_EQ(be.Get("k1"), "<none>");
}

TEST(ElleServer, BadFramesMidBatchAreAnsweredInOrder) {
  FakeBackend be;
  ServerConn c(&be);
  std::string batch = EncodeFrame(kBeginTx, 3, Iso());
  batch += EncodeFrame(0x42, 3, "zz");                                // unknown type
  batch += EncodeFrame(kReadFile, 0, std::string("\x00", 1));         // malformed, autocommit
  batch += EncodeFrame(kCommitTx, 999, Flags());                      // unknown TX_ID
  batch += EncodeFrame(kBeginTx, 4, "");                              // bad BEGIN payload
  batch += EncodeFrame(kAppendFile, 4, PathPayload("k", "no "));     // so 4 is unknown
  batch += EncodeFrame(kAuth, 0, "token");                            // not on a session
  batch += EncodeFrame(kAppendFile, 3, PathPayload("k", "yes "));
  batch += EncodeFrame(kCommitTx, 3, Flags());
  c.Send(batch);
  const std::vector<std::pair<uint8_t, uint64_t>> want = {
      {kOk, 3}, {kBadRequest, 3}, {kBadRequest, 0}, {kBadRequest, 999}, {kBadRequest, 4},
      {kBadRequest, 4}, {kBadRequest, 0}, {kOk, 3}, {kOk, 3}};
  for (size_t i = 0; i < want.size(); ++i) {
    Response r = c.Next();
    EXPECT_EQ(r.status, want[i].first) << "response " << i << ": " << r.msg;
    EXPECT_EQ(r.tx, want[i].second) << "response " << i;
  }
  EXPECT_EQ(be.Get("k"), "yes ");

  // Too many open transactions, pipelined: the 65th BEGIN is refused.
  batch.clear();
  for (uint64_t a = 1; a <= kMaxOpenTx + 1; ++a) batch += EncodeFrame(kBeginTx, 100 + a, Iso());
  c.Send(batch);
  for (int i = 0; i < kMaxOpenTx; ++i) EXPECT_EQ(c.Next().status, kOk) << i;
  Response r = c.Next();
  EXPECT_EQ(r.status, kBadRequest);
  EXPECT_NE(r.msg.find("too many"), std::string::npos) << r.msg;
  EXPECT_EQ(be.open(), kMaxOpenTx);

  // A frame, then an oversize length: the frame's answer, the error, then close;
  // the connection's open transactions are aborted.
  std::string big;
  PutBE32(&big, kMaxFrame + 1);
  c.Send(EncodeFrame(kReadFile, 0, PathPayload("k")) + big + EncodeFrame(kReadFile, 0, PathPayload("k")));
  r = c.Next();
  EXPECT_EQ(r.status, kOk);
  EXPECT_EQ(r.data, "yes ");
  r = c.Next();
  EXPECT_EQ(r.status, kBadRequest);
  EXPECT_NE(r.msg.find("16 MiB"), std::string::npos) << r.msg;
  EXPECT_EQ(c.Next().status, 0xff) << "connection closed after an oversize length";
  c.Close();
  EXPECT_TRUE(c.done());
  EXPECT_EQ(be.open(), 0);
}

TEST(ElleServer, TruncatedFrameAfterABatchClosesAndAborts) {
  FakeBackend be;
  ServerConn c(&be);
  const std::string commit = EncodeFrame(kCommitTx, 2, Flags());
  c.Send(EncodeFrame(kBeginTx, 2, Iso()) + EncodeFrame(kAppendFile, 2, PathPayload("k", "1 ")) +
         commit.substr(0, commit.size() - 1));
  EXPECT_EQ(c.Next().status, kOk);
  EXPECT_EQ(c.Next().status, kOk);
  c.Close();  // the COMMIT_TX never completes
  EXPECT_TRUE(c.done());
  EXPECT_EQ(be.committed(), 0);
  EXPECT_EQ(be.open(), 0);
  EXPECT_EQ(be.Get("k"), "<none>");
}

TEST(ElleServer, ClientPipelinesManyTransactionsInOneWrite) {
  FakeBackend be;
  const std::string path = ::testing::TempDir() + "/elle_proto_" + std::to_string(getpid()) + ".sock";
  ::unlink(path.c_str());
  const int lfd = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_un un{};
  un.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(un.sun_path));
  std::memcpy(un.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&un), sizeof(un)), 0);
  ASSERT_EQ(listen(lfd, 4), 0);
  std::atomic<bool> stop{false};
  std::thread server([&] {
    const int fd = accept(lfd, nullptr, nullptr);
    if (fd < 0) return;
    {
      Session session(&be);
      ServeConnection(fd, stop, [&](const Frame& f, std::string* out) {
        AppendResponse(out, session.Handle(f));
        return true;
      });
    }
    close(fd);
  });
  Client client;
  ASSERT_TRUE(client.ConnectUnix(path).ok());
  std::string batch;
  for (uint64_t a = 1; a <= 50; ++a) {
    batch += EncodeFrame(kBeginTx, a, Iso());
    batch += EncodeFrame(kAppendFile, a, PathPayload("k" + std::to_string(a), std::to_string(a)));
    batch += EncodeFrame(kCommitTx, a, Flags());
  }
  ASSERT_TRUE(client.Send(batch).ok());
  for (uint64_t a = 1; a <= 50; ++a) {
    for (int i = 0; i < 3; ++i) {
      auto r = client.Receive();
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      EXPECT_EQ(r->status, kOk) << r->msg;
      EXPECT_EQ(r->tx, a);
    }
  }
  EXPECT_EQ(be.committed(), 50);
  EXPECT_EQ(be.Get("k50"), "50");
  // Call still works on the same (buffered) connection.
  auto r = client.Call(kReadFile, 0, PathPayload("k7"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->data, "7");
  client.Close();
  server.join();
  close(lfd);
  ::unlink(path.c_str());
}

}  // namespace
}  // namespace dbfs::elle::proto
