// Rendering of a CheckResult, the output of `dbfs elle check`.
//
// The output is one EDN map, shaped like Elle's result —
//
//   {:valid? false
//    :anomaly-types [:G-single :G1a]
//    :anomalies {:G-single [{:type :G-single, :cycle [...], :steps [...], :summary "..."}] ...}
//    :anomaly-counts {:G-single 1, :G1a 3}
//    :realtime? false
//    :stats {...}}
//
// followed by EDN comment lines (";; ...") that explain one example of each
// anomaly type in words, so the whole output still parses as EDN.
#pragma once

#include <iosfwd>
#include <string>

#include "elle/list_append.h"

namespace dbfs::elle {

void WriteReport(const CheckResult& result, const CheckOptions& options, std::ostream& out);

// One line: "VALID: ..." or "INVALID: ...".
std::string Verdict(const CheckResult& result, const CheckOptions& options);

}  // namespace dbfs::elle
