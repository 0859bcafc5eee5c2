// libFuzzer target: the streaming CSV reader of `northstar import` (ingest/csv_reader.h) and
// the per-value checks the import applies (UTF-8, ISO timestamps). Input: the first byte is
// (or picks) the delimiter, the rest is the file. Besides "no crash", checks that every record
// read survives a round trip: quoted again (RFC 4180) and re-read, it gives the same fields,
// and that the in-memory reader of the bulk import (CsvSpanReader), over the whole text and
// over the pieces CsvPieceStarts cuts it into, reads the same records, lines and error.
#include <cstdio>

#include "fuzz_common.h"
#include "ingest/csv_reader.h"

namespace {

std::string Quote(const std::string& f, char delim) {
  if (f.find_first_of(std::string("\"\r\n") + delim) == std::string::npos && !f.empty()) return f;
  if (f.empty()) return "\"\"";
  std::string q = "\"";
  for (char c : f) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

// The bulk import's reading of text: pieces of about piece_bytes, each read on its own, line
// numbers offset as the import offsets them; stops at the first error like the import.
void ReadPieces(const std::string& text, char delim, size_t piece_bytes, std::vector<std::vector<std::string>>* out,
                std::vector<size_t>* lines, std::string* err) {
  const std::vector<size_t> starts = ns::CsvPieceStarts(text, 0, piece_bytes, delim);
  size_t base = 0;
  for (size_t k = 0; k < starts.size(); k++) {
    const size_t end = k + 1 < starts.size() ? starts[k + 1] : text.size();
    ns::CsvSpanReader r(std::string_view(text).substr(starts[k], end - starts[k]), delim);
    std::vector<std::string_view> fields;
    for (;;) {
      auto more = r.Next(&fields);
      if (!more.ok()) {
        *err = "line " + std::to_string(base + r.line()) + ": " + more.status().message();
        return;
      }
      if (!*more) break;
      out->emplace_back(fields.begin(), fields.end());
      lines->push_back(base + r.line());
    }
    base += r.lines_done();
  }
}

bool ReadAll(const std::string& text, char delim, std::vector<std::vector<std::string>>* out, ns::Status* err,
             std::vector<size_t>* lines = nullptr) {
  FILE* f = fmemopen(const_cast<char*>(text.data()), text.size(), "rb");
  if (!f) return false;
  ns::CsvReader csv(f, delim);
  std::vector<std::string> row;
  for (int n = 0; n < 100000; n++) {
    auto more = csv.Next(&row);
    if (!more.ok()) {
      *err = more.status();
      break;
    }
    if (!*more) break;
    nsfuzz::Require(csv.line() >= 1, "record line number 0");
    out->push_back(row);
    if (lines) lines->push_back(csv.line());
  }
  std::fclose(f);
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const char kDelims[] = {',', ';', '\t', '|'};
  // The first byte is the delimiter if it is one of them (the seeds start with it), else picks one.
  char delim = static_cast<char>(data[0]);
  if (delim != ',' && delim != ';' && delim != '\t' && delim != '|') delim = kDelims[data[0] % 4];
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (text.empty()) return 0;  // fmemopen of size 0 fails
  std::vector<std::vector<std::string>> rows;
  std::vector<size_t> lines;
  ns::Status err;
  if (!ReadAll(text, delim, &rows, &err, &lines)) return 0;
  if (!err.ok()) nsfuzz::CheckStatus(err);
  for (size_t piece_bytes : {size_t{1} << 20, size_t{1} + data[0] % 16}) {
    std::vector<std::vector<std::string>> span_rows;
    std::vector<size_t> span_lines;
    std::string span_err;
    ReadPieces(text, delim, piece_bytes, &span_rows, &span_lines, &span_err);
    nsfuzz::Require(span_rows == rows, "CsvSpanReader pieces read other records than CsvReader", text);
    nsfuzz::Require(span_lines == lines, "CsvSpanReader pieces number lines unlike CsvReader", text);
    nsfuzz::Require(span_err == (err.ok() ? std::string() : err.message()), "CsvSpanReader error differs", span_err);
  }
  const auto& tz = nsfuzz::Zone(data[0] >> 2);
  for (const auto& row : rows) {
    nsfuzz::Require(!row.empty(), "a record with no fields");
    for (const auto& v : row) {
      if (!nsfuzz::ValidUtf8(v)) {
        nsfuzz::Require(nsfuzz::ValidUtf8(ns::EscapeInvalidUtf8(v)), "EscapeInvalidUtf8 output invalid");
        continue;
      }
      auto t = ns::ParseIsoTimestamp(v, tz);
      if (!t.ok()) nsfuzz::CheckStatus(t.status());
    }
  }
  // Round trip: write the records back as CSV and read them again.
  std::string again;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); i++) {
      if (i) again += delim;
      // A one-field record holding "" must stay a record: quote it.
      again += (row.size() == 1 && row[0].empty()) ? std::string() : Quote(row[i], delim);
    }
    again += '\n';
  }
  if (again.empty()) return 0;
  std::vector<std::vector<std::string>> back;
  ns::Status err2;
  if (!ReadAll(again, delim, &back, &err2)) return 0;
  nsfuzz::Require(err2.ok(), "re-quoted CSV fails to parse", err2.message());
  nsfuzz::Require(back == rows, "CSV round trip changed the records", again);
  return 0;
}
