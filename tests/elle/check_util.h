// Shared by the checker tests: parse a hand-written EDN history, check it,
// and explain the anomalies found (one example each) for failure messages.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <utility>

#include "elle/history.h"
#include "elle/list_append.h"

namespace dbfs::elle {

inline CheckResult Check(std::string_view edn, bool realtime = false) {
  auto history = ParseHistory(edn);
  EXPECT_TRUE(history.ok()) << history.status().ToString();
  if (!history.ok()) return {};
  CheckOptions options;
  options.realtime = realtime;
  auto result = CheckListAppend(*history, options);
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return {};
  return std::move(result).value();
}

inline std::string Explain(const CheckResult& r) {
  std::string s;
  for (const auto& [type, examples] : r.anomalies) {
    s += type + ": " + examples.front().explanation + "\n";
  }
  return s;
}

}  // namespace dbfs::elle
