#include "ingest/csv_reader.h"

#include <algorithm>
#include <cstring>

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

namespace ns {

StatusOr<bool> CsvSpanReader::Next(std::vector<std::string_view>* fields) {
  fields->clear();
  unquoted_.clear();
  const size_t n = text_.size();
  const char* t = text_.data();
  if (pos_ >= n) return false;
  record_line_ = line_;
  record_start_ = pos_;
  // A record end at pos_ (\n, \r or \r\n): consumed, counted.
  auto end_record = [&] {
    if (t[pos_] == '\r' && pos_ + 1 < n && t[pos_ + 1] == '\n') pos_++;
    pos_++;
    line_++;
  };
  for (;;) {
    if (pos_ < n && t[pos_] == '"') {
      // Quoted: doubled quotes are one quote (copied to a buffer of our own only then).
      size_t seg = ++pos_;
      std::string* buf = nullptr;
      std::string_view value;
      for (;;) {
        if (pos_ >= n) return InvalidArgument("unterminated quoted field");
        const char c = t[pos_];
        if (c == '"') {
          if (pos_ + 1 < n && t[pos_ + 1] == '"') {
            if (!buf) buf = &unquoted_.emplace_back();
            buf->append(t + seg, pos_ + 1 - seg);
            pos_ += 2;
            seg = pos_;
            continue;
          }
          if (buf) {
            buf->append(t + seg, pos_ - seg);
            value = *buf;
          } else {
            value = std::string_view(t + seg, pos_ - seg);
          }
          pos_++;
          break;
        }
        if (c == '\n') line_++;
        pos_++;
      }
      fields->push_back(value);
      if (pos_ >= n) return true;
      const char c = t[pos_];
      if (c == delim_) {
        pos_++;
        continue;
      }
      if (c == '\n' || c == '\r') {
        end_record();
        return true;
      }
      return InvalidArgument("text after a closing quote");
    }
    const size_t start = pos_;
    while (pos_ < n) {
      const char c = t[pos_];
      if (c == delim_ || c == '\n' || c == '\r') break;
      pos_++;
    }
    fields->push_back(std::string_view(t + start, pos_ - start));
    if (pos_ >= n) return true;
    if (t[pos_] == delim_) {
      pos_++;
      continue;
    }
    end_record();
    return true;
  }
}

std::vector<size_t> CsvPieceStarts(std::string_view text, size_t from, size_t piece_bytes, char delimiter,
                                   const std::function<void(size_t)>& read_up_to) {
  std::vector<size_t> starts{from};
  const size_t n = text.size();
  if (from >= n) return starts;
  piece_bytes = std::max<size_t>(piece_bytes, 1);
  bool quotes = false;
  constexpr size_t kChunk = size_t{16} << 20;
  for (size_t p = from; p < n && !quotes; p += kChunk) {
    quotes = std::memchr(text.data() + p, '"', std::min(kChunk, n - p)) != nullptr;
    if (read_up_to) read_up_to(std::min(n, p + kChunk));
  }
  if (!quotes) {
    // No quotes: every newline ends a record.
    for (size_t p = from + piece_bytes; p < n;) {
      const void* nl = std::memchr(text.data() + p, '\n', n - p);
      if (!nl) break;
      const size_t s = static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
      if (s >= n) break;
      starts.push_back(s);
      p = s + piece_bytes;
    }
    return starts;
  }
  // Quotes may hold newlines: read the records (a malformed one ends the splitting; the
  // piece that holds it reports it).
  CsvSpanReader r(text.substr(from), delimiter);
  std::vector<std::string_view> fields;
  size_t next = piece_bytes;
  for (;;) {
    auto more = r.Next(&fields);
    if (!more.ok() || !*more) break;
    if (r.offset() >= next && from + r.offset() < n) {
      starts.push_back(from + r.offset());
      next = r.offset() + piece_bytes;
      if (read_up_to) read_up_to(from + r.offset());
    }
  }
  return starts;
}

}  // namespace ns
