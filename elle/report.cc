#include "elle/report.h"

#include <ostream>
#include <sstream>
#include <string>

namespace dbfs::elle {
namespace {

// Prefixes every line of `text` with ";; " (an EDN comment).
void Comment(const std::string& text, std::ostream& out) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) out << (line.empty() ? ";;" : ";; ") << line << '\n';
}

}  // namespace

std::string Verdict(const CheckResult& result, const CheckOptions& options) {
  const CheckStats& s = result.stats;
  std::ostringstream out;
  const char* model = options.realtime ? "strict serializability" : "serializability";
  const std::string txns = std::to_string(s.ok + s.fail + s.info) + " transactions (" +
                           std::to_string(s.ok) + " ok, " + std::to_string(s.fail) + " failed, " +
                           std::to_string(s.info) + " indeterminate) over " +
                           std::to_string(s.keys) + (s.keys == 1 ? " key" : " keys");
  if (result.valid) {
    out << "VALID: no anomalies in " << txns << "; checked " << model << ".";
    return out.str();
  }
  int64_t total = 0;
  for (const auto& [type, n] : result.counts) total += n;
  out << "INVALID: " << total << (total == 1 ? " anomaly" : " anomalies") << " of "
      << result.anomaly_types.size() << (result.anomaly_types.size() == 1 ? " type" : " types")
      << " (";
  for (size_t i = 0; i < result.anomaly_types.size(); ++i) {
    out << (i ? ", " : "") << result.anomaly_types[i];
  }
  out << ") in " << txns << "; checked " << model << ".";
  return out.str();
}

void WriteReport(const CheckResult& result, const CheckOptions& options, std::ostream& out) {
  out << "{:valid? " << (result.valid ? "true" : "false") << "\n :anomaly-types [";
  for (size_t i = 0; i < result.anomaly_types.size(); ++i) {
    out << (i ? " :" : ":") << result.anomaly_types[i];
  }
  out << "]\n :anomalies";
  if (result.anomaly_types.empty()) {
    out << " {}";
  } else {
    out << "\n {";
    for (size_t t = 0; t < result.anomaly_types.size(); ++t) {
      const std::string& type = result.anomaly_types[t];
      out << (t ? "\n  :" : ":") << type << "\n  [";
      const auto& examples = result.anomalies.at(type);
      for (size_t i = 0; i < examples.size(); ++i) {
        out << (i ? "\n   " : "") << examples[i].edn;
      }
      out << "]";
    }
    out << "}";
  }
  out << "\n :anomaly-counts {";
  bool first = true;
  for (const std::string& type : result.anomaly_types) {
    out << (first ? ":" : ", :") << type << " " << result.counts.at(type);
    first = false;
  }
  const CheckStats& s = result.stats;
  out << "}\n :realtime? " << (options.realtime ? "true" : "false");
  out << "\n :stats {:ops " << s.ops << ", :ok " << s.ok << ", :fail " << s.fail << ", :info "
      << s.info << ", :keys " << s.keys << ", :ww-edges " << s.ww_edges << ", :wr-edges "
      << s.wr_edges << ", :rw-edges " << s.rw_edges << ", :realtime-edges " << s.realtime_edges
      << ", :nontrivial-sccs " << s.nontrivial_sccs << ", :largest-scc " << s.largest_scc
      << ", :cycle-search-truncated? " << (s.search_truncated ? "true" : "false") << "}}\n";

  out << ";;\n";
  Comment(Verdict(result, options), out);
  for (const std::string& type : result.anomaly_types) {
    const auto& examples = result.anomalies.at(type);
    const int64_t n = result.counts.at(type);
    out << ";;\n";
    std::ostringstream head;
    head << type << " #0 (" << n << " found";
    if (static_cast<int64_t>(examples.size()) < n) head << ", " << examples.size() << " listed";
    head << ")";
    Comment(head.str(), out);
    Comment(examples.front().explanation, out);
  }
}

}  // namespace dbfs::elle
