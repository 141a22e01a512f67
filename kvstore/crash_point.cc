#include "kvstore/crash_point.h"

#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>

namespace dbfs {

namespace {

struct Armed {
  std::string name;
  long nth = 1;
};

// Parsed once, before main (the environment of a daemon does not change).
Armed ParseArmed() {
  Armed a;
  const char* v = getenv("DBFS_TEST_CRASH_POINT");
  if (v == nullptr || *v == '\0') return a;
  a.name = v;
  const size_t colon = a.name.rfind(':');
  if (colon != std::string::npos) {
    a.nth = std::max(1L, strtol(a.name.c_str() + colon + 1, nullptr, 10));
    a.name.resize(colon);
  }
  return a;
}

const Armed& TheArmed() {
  static const Armed a = ParseArmed();
  return a;
}

std::atomic<long> passes{0};

}  // namespace

const bool kCrashPointsArmed = !TheArmed().name.empty();

void CrashPointSlow(const char* name) {
  const Armed& a = TheArmed();
  if (a.name != name || passes.fetch_add(1) + 1 != a.nth) return;
  const std::string msg = "dbfs: crash point " + a.name + " reached (DBFS_TEST_CRASH_POINT)\n";
  ssize_t ignored = write(STDERR_FILENO, msg.data(), msg.size());
  (void)ignored;
  kill(getpid(), SIGKILL);
  for (;;) pause();
}

}  // namespace dbfs
