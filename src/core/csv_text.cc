#include "core/csv_text.h"

namespace ns {

StatusOr<std::vector<std::vector<std::string>>> ParseCsvText(std::string_view t) {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  size_t line = 1, quote_line = 0;
  for (size_t i = 0; i < t.size(); i++) {
    char c = t[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < t.size() && t[i + 1] == '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        if (c == '\n') line++;
        field += c;
      }
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = true;
      quote_line = line;
      any = true;
    } else if (c == ',') {
      row.push_back(std::move(field));
      field.clear();
      any = true;
    } else if (c == '\r' && i + 1 < t.size() && t[i + 1] == '\n') {
      continue;
    } else if (c == '\n') {
      row.push_back(std::move(field));
      field.clear();
      rows.push_back(std::move(row));
      row.clear();
      any = false;
      line++;
    } else {
      field += c;
      any = true;
    }
  }
  if (quoted)
    return InvalidArgument("CSV: the quoted field opened on line " + std::to_string(quote_line) + " is never closed");
  if (any || !field.empty()) {
    row.push_back(std::move(field));
    rows.push_back(std::move(row));
  }
  return rows;
}

namespace {

// A plain decimal number: -?digits[.digits][e[+-]digits]. Only these may start with '-' unquoted.
bool PlainNumber(const std::string& v) {
  size_t i = 0, n = v.size();
  auto digits = [&] {
    size_t start = i;
    while (i < n && v[i] >= '0' && v[i] <= '9') i++;
    return i > start;
  };
  if (i < n && v[i] == '-') i++;
  if (!digits()) return false;
  if (i < n && v[i] == '.') {
    i++;
    if (!digits()) return false;
  }
  if (i < n && (v[i] == 'e' || v[i] == 'E')) {
    i++;
    if (i < n && (v[i] == '+' || v[i] == '-')) i++;
    if (!digits()) return false;
  }
  return i == n;
}

}  // namespace

std::string CsvCell(const std::string& s) {
  std::string v = s;
  // OWASP's CSV-injection rule: a cell starting with = + - @ tab or CR is prefixed with an
  // apostrophe, so spreadsheet programs show it as text instead of running it.
  if (!v.empty() && (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r') &&
      !PlainNumber(v))
    v = "'" + v;
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void AppendCsvRow(std::string& out, const std::vector<std::string>& cells) {
  for (size_t i = 0; i < cells.size(); i++) {
    if (i) out += ',';
    out += CsvCell(cells[i]);
  }
  out += "\r\n";
}

}  // namespace ns
