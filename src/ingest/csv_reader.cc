#include "ingest/csv_reader.h"

namespace ns {

CsvReader::CsvReader(FILE* f, char delimiter) : f_(f), delim_(delimiter), buf_(1 << 20) {}

int CsvReader::Get() {
  if (pos_ == len_) {
    len_ = std::fread(buf_.data(), 1, buf_.size(), f_);
    pos_ = 0;
    if (len_ == 0) return EOF;
  }
  bytes_++;
  return static_cast<unsigned char>(buf_[pos_++]);
}

StatusOr<bool> CsvReader::Next(std::vector<std::string>* fields) {
  fields->clear();
  int c = Get();
  if (c == EOF) return false;
  record_line_ = line_;
  std::string field;
  bool quoted = false, was_quoted = false;
  for (;; c = Get()) {
    if (quoted) {
      if (c == EOF) return InvalidArgument("line " + std::to_string(record_line_) + ": unterminated quoted field");
      if (c == '"') {
        int n = Get();
        if (n == '"') {
          field += '"';
          continue;
        }
        quoted = false;
        c = n;
      } else {
        if (c == '\n') line_++;
        field += static_cast<char>(c);
        continue;
      }
    }
    if (c == '"' && field.empty() && !was_quoted) {
      quoted = was_quoted = true;
      continue;
    }
    if (c == delim_) {
      fields->push_back(std::move(field));
      field.clear();
      was_quoted = false;
      continue;
    }
    if (c == '\r') {
      int n = Get();
      if (n != '\n' && n != EOF) {
        pos_--;
        bytes_--;
      }
      c = '\n';
    }
    if (c == '\n' || c == EOF) {
      if (c == '\n') line_++;
      fields->push_back(std::move(field));
      return true;
    }
    if (was_quoted) return InvalidArgument("line " + std::to_string(record_line_) + ": text after a closing quote");
    field += static_cast<char>(c);
  }
}

}  // namespace ns
