// Streaming RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF), for imports of
// files far larger than memory. Not thread-safe.
#pragma once

#include <cstdio>
#include <deque>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

class CsvReader {
 public:
  // Reads from f (not owned). delimiter is usually ','.
  explicit CsvReader(FILE* f, char delimiter = ',');
  // Reads the next record into fields. Returns false at end of input.
  StatusOr<bool> Next(std::vector<std::string>* fields);
  // 1-based line number where the last record returned started.
  size_t line() const { return record_line_; }
  // Lines read so far (the next record starts on line lines_done() + 1).
  size_t lines_done() const { return line_ - 1; }
  // Bytes consumed so far (for progress).
  size_t bytes() const { return bytes_; }

 private:
  int Get();
  FILE* f_;
  char delim_;
  size_t line_ = 1, record_line_ = 0, bytes_ = 0;
  std::vector<char> buf_;
  size_t pos_ = 0, len_ = 0;
};

// The same grammar as CsvReader (and the same line numbers and errors) over text in memory,
// for the import's parallel chunks: fields are views into the text, or into the reader's
// own buffer for a quoted field with doubled quotes. Not thread-safe; one per chunk.
class CsvSpanReader {
 public:
  explicit CsvSpanReader(std::string_view text, char delimiter = ',') : text_(text), delim_(delimiter) {}
  // Reads the next record into fields (valid until the next call). False at the end. An
  // error's message does not name the line ("unterminated quoted field"): see line().
  StatusOr<bool> Next(std::vector<std::string_view>* fields);
  // 1-based line (within the text) where the last record started; lines counted as
  // CsvReader counts them (a newline inside quotes counts, CRLF counts once).
  size_t line() const { return record_line_; }
  // Lines begun so far minus one: what the next piece's line numbers are offset by.
  size_t lines_done() const { return line_ - 1; }
  // Bytes consumed so far; the start and end of the last record.
  size_t offset() const { return pos_; }
  size_t record_start() const { return record_start_; }

 private:
  std::string_view text_;
  char delim_;
  size_t pos_ = 0, line_ = 1, record_line_ = 0, record_start_ = 0;
  std::deque<std::string> unquoted_;  // quoted fields with doubled quotes, this record
};

// Offsets where records start, about every `piece_bytes` from `from` (the first is `from`):
// a newline ends a record unless the text has quotes, then the records are read to find out.
// `read_up_to(offset)`, when given, is told as the search goes that it will not read the text
// before `offset` again (a mapped file lets those pages go: the search reads the whole file).
std::vector<size_t> CsvPieceStarts(std::string_view text, size_t from, size_t piece_bytes, char delimiter = ',',
                                   const std::function<void(size_t)>& read_up_to = nullptr);

}  // namespace ns
