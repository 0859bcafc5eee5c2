// CSV text in memory (RFC 4180): parsing an uploaded table and quoting cells for export.
// Large files go through ingest/csv_reader.h (streaming); these are for tables of actions.
// Exports are written with CsvCell / AppendCsvRow, row by row (large ones streamed).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

// Rows of fields; CRLF or LF; quoted fields with doubled quotes; an unterminated quote is
// an error naming the line.
StatusOr<std::vector<std::vector<std::string>>> ParseCsvText(std::string_view text);
// A cell quoted when it holds a comma, quote, CR or LF; cells starting with = + - @ tab or
// CR (other than a plain number such as -12.5) get a leading apostrophe so spreadsheet
// programs do not run them as formulas. Every CSV export uses it.
std::string CsvCell(const std::string& s);
// One row of an export: the cells through CsvCell, comma-separated, ended by CRLF, appended
// to `out` (so a streamed export can build a piece of rows at a time).
void AppendCsvRow(std::string& out, const std::vector<std::string>& cells);
// Starts every export: Excel opens UTF-8 (Chinese text) correctly only after it.
inline constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

}  // namespace ns
