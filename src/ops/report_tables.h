// The four tables of the team's method (requirements, process, monitoring, evaluation)
// as rows with the column headings of the team's Excel templates, in Chinese or English,
// and their CSV and XLSX (libxlsxwriter) forms.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"

namespace ns {

using TableCell = std::variant<std::monostate, double, std::string>;

struct ReportTable {
  std::string key;    // requirements | process | monitoring | evaluation
  std::string title;  // sheet name in the chosen language
  std::vector<std::string> headers;
  std::vector<std::vector<TableCell>> rows;
  std::vector<std::string> percent_columns;  // headers whose numbers are rates (formatted 0.0%)
};

// lang: "zh" or "en". scenario = GET /scenarios/{id} (with actions); kpis = their states;
// evaluation = Evaluations::Get; times are shown in the project's zone tz.
std::vector<ReportTable> ScenarioTables(const nlohmann::json& scenario, const nlohmann::json& kpis,
                                        const nlohmann::json& evaluation, const std::string& lang, const TimeZone& tz);
// UTF-8 with BOM (so Excel opens Chinese text correctly), CRLF line ends.
std::string TableToCsv(const ReportTable& t);
// An .xlsx workbook with one sheet per table; the bytes of the file.
StatusOr<std::string> TablesToXlsx(const std::vector<ReportTable>& tables);

}  // namespace ns
