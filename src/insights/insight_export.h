// An insight's answer as tables of the operations layer's export writers (ops/report_tables.h:
// CSV with BOM, XLSX): the kind's own table (QueryKind::table) with its headings in Chinese
// or English, and a sheet that says what was run.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "core/time_zone.h"
#include "insights/insight_docs.h"
#include "ops/report_tables.h"
#include "query/query_kind.h"

namespace ns {

// The answer of `kind` as a table titled `title` (a sheet name: cut to 31 bytes, without the
// characters Excel refuses). lang: "zh" or "en". Headings the dictionary does not know
// (series labels, other kinds' own) are kept as they are.
ReportTable InsightResultTable(const QueryKind& kind, const nlohmann::json& result, const std::string& title,
                               const std::string& lang);
// What was exported (id 0: an unsaved query): name, description, kind, tags, the query as run (dates resolved), its
// dates and time zone, when the answer was computed (local time of tz).
ReportTable InsightAboutTable(int64_t id, const InsightDoc& doc, const nlohmann::json& query_as_run,
                              int64_t computed_at, const TimeZone& tz, const std::string& lang);

}  // namespace ns
