// /proc/self/mountinfo field decoding, shared by libdbfs and the tools
// (internal; not installed).
#pragma once

#include <string>
#include <string_view>

namespace dbfs {

// mountinfo escapes space, tab, newline and backslash as \ooo.
inline std::string UnescapeMountInfo(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const char a = s[i + 1], b = s[i + 2], c = s[i + 3];
      if (a >= '0' && a <= '7' && b >= '0' && b <= '7' && c >= '0' && c <= '7') {
        out.push_back(static_cast<char>((a - '0') * 64 + (b - '0') * 8 + (c - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

}  // namespace dbfs
