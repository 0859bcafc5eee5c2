// Streaming RFC 4180 CSV reader (quoted fields, doubled quotes, CRLF), for imports of
// files far larger than memory. Not thread-safe.
#pragma once

#include <cstdio>
#include <string>
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

}  // namespace ns
