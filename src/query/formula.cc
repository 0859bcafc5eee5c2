#include "query/formula.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ns {

// Recursive descent over the text, one character of lookahead (spaces skipped). Every
// error names the field and the 1-based position of the offending character.
class FormulaParser {
 public:
  FormulaParser(std::string_view text, size_t series, const std::string& field, Formula* out)
      : s_(text), series_(series), field_(field), out_(out) {}

  Status Run() {
    NS_ASSIGN_OR_RETURN(out_->root_, Expr(0));
    SkipSpaces();
    if (pos_ < s_.size()) {
      if (!Known(s_[pos_])) return UnknownCharacter();
      return Error("unexpected " + Quote(pos_) + " at position " + Pos(pos_) + " (expected an operator)");
    }
    return Status::OK();
  }

 private:
  Status Error(const std::string& msg) const { return InvalidArgument(field_ + ": " + msg, field_); }
  std::string Pos(size_t p) const { return std::to_string(p + 1); }
  // A printable character quoted; any other byte (a part of a UTF-8 character such as '×')
  // in hex, so the message stays valid UTF-8.
  std::string Quote(size_t p) const {
    const unsigned char c = static_cast<unsigned char>(s_[p]);
    if (c >= 0x20 && c < 0x7f) return "'" + std::string(1, s_[p]) + "'";
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", c);
    return std::string("byte ") + hex;
  }
  // What stands at `p` for an error message: the character, or the end.
  std::string What(size_t p) const {
    return p < s_.size() ? Quote(p) + " at position " + Pos(p) : "end of formula at position " + Pos(p);
  }
  static bool Known(char c) {
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '.' || c == '+' ||
           c == '-' || c == '*' || c == '/' || c == '(' || c == ')' || c == ' ' || c == '\t';
  }
  Status UnknownCharacter() const {
    return Error("unexpected character " + Quote(pos_) + " at position " + Pos(pos_) +
                 " (a formula has numbers, series letters A-Z, + - * / and parentheses)");
  }
  void SkipSpaces() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) pos_++;
  }
  int32_t Add(Formula::Node n) {
    out_->nodes_.push_back(n);
    return static_cast<int32_t>(out_->nodes_.size() - 1);
  }

  StatusOr<int32_t> Expr(int depth) {
    if (depth > Formula::kMaxDepth)
      return Error("nested too deeply at position " + Pos(pos_) + " (at most " + std::to_string(Formula::kMaxDepth) +
                   " levels)");
    NS_ASSIGN_OR_RETURN(int32_t left, Term(depth));
    for (;;) {
      SkipSpaces();
      if (pos_ >= s_.size() || (s_[pos_] != '+' && s_[pos_] != '-')) return left;
      const Formula::Op op = s_[pos_] == '+' ? Formula::Op::kAdd : Formula::Op::kSubtract;
      pos_++;
      NS_ASSIGN_OR_RETURN(int32_t right, Term(depth));
      left = Add({op, 0, 0, left, right});
    }
  }

  StatusOr<int32_t> Term(int depth) {
    NS_ASSIGN_OR_RETURN(int32_t left, Unary(depth));
    for (;;) {
      SkipSpaces();
      if (pos_ >= s_.size() || (s_[pos_] != '*' && s_[pos_] != '/')) return left;
      const Formula::Op op = s_[pos_] == '*' ? Formula::Op::kMultiply : Formula::Op::kDivide;
      pos_++;
      NS_ASSIGN_OR_RETURN(int32_t right, Unary(depth));
      left = Add({op, 0, 0, left, right});
    }
  }

  StatusOr<int32_t> Unary(int depth) {
    SkipSpaces();
    if (pos_ < s_.size() && s_[pos_] == '-') {
      if (depth > Formula::kMaxDepth)
        return Error("nested too deeply at position " + Pos(pos_) + " (at most " + std::to_string(Formula::kMaxDepth) +
                     " levels)");
      pos_++;
      NS_ASSIGN_OR_RETURN(int32_t a, Unary(depth + 1));
      return Add({Formula::Op::kNegate, 0, 0, a, -1});
    }
    return Primary(depth);
  }

  StatusOr<int32_t> Primary(int depth) {
    SkipSpaces();
    if (pos_ >= s_.size()) return Error("unexpected " + What(pos_) + " (expected a number, a series letter or '(')");
    const char c = s_[pos_];
    if (c == '(') {
      const size_t open = pos_++;
      NS_ASSIGN_OR_RETURN(int32_t inner, Expr(depth + 1));
      SkipSpaces();
      if (pos_ >= s_.size() || s_[pos_] != ')')
        return Error("expected ')' for the '(' at position " + Pos(open) + ", got " + What(pos_));
      pos_++;
      return inner;
    }
    if ((c >= '0' && c <= '9') || c == '.') {
      const size_t start = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') pos_++;
      if (pos_ < s_.size() && s_[pos_] == '.') {
        pos_++;
        while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') pos_++;
      }
      const std::string digits(s_.substr(start, pos_ - start));
      if (digits == ".") return Error("unexpected '.' at position " + Pos(start) + " (expected a number)");
      return Add({Formula::Op::kNumber, std::strtod(digits.c_str(), nullptr), 0, -1, -1});
    }
    const bool upper = c >= 'A' && c <= 'Z', lower = c >= 'a' && c <= 'z';
    if (upper || lower) {
      const size_t index = static_cast<size_t>(upper ? c - 'A' : c - 'a');
      if (index >= series_) {
        const char last = static_cast<char>('A' + series_ - 1);
        return Error(std::string(1, c) + " at position " + Pos(pos_) + " refers to series " +
                     std::to_string(index + 1) + ", but the query has " + std::to_string(series_) + " series (A" +
                     (series_ > 1 ? std::string("..") + last : std::string()) + ")");
      }
      pos_++;
      out_->letters_.push_back(index);
      return Add({Formula::Op::kSeries, 0, index, -1, -1});
    }
    if (c == ')' || c == '+' || c == '*' || c == '/')
      return Error("unexpected " + Quote(pos_) + " at position " + Pos(pos_) +
                   " (expected a number, a series letter or '(')");
    return UnknownCharacter();
  }

  std::string_view s_;
  size_t series_;
  const std::string& field_;
  Formula* out_;
  size_t pos_ = 0;
};

StatusOr<Formula> Formula::Parse(std::string_view text, size_t series, const std::string& field) {
  if (text.find_first_not_of(" \t") == std::string_view::npos)
    return InvalidArgument(field + ": must not be empty", field);
  if (text.size() > kMaxLength)
    return InvalidArgument(
        field + ": " + std::to_string(text.size()) + " characters; at most " + std::to_string(kMaxLength), field);
  Formula f;
  f.text_ = std::string(text);
  FormulaParser parser(text, series, field, &f);
  NS_RETURN_IF_ERROR(parser.Run());
  std::sort(f.letters_.begin(), f.letters_.end());
  f.letters_.erase(std::unique(f.letters_.begin(), f.letters_.end()), f.letters_.end());
  return f;
}

std::optional<double> Formula::Evaluate(const std::vector<std::optional<double>>& series) const {
  std::optional<double> v = Eval(root_, series);
  if (v && !std::isfinite(*v)) return std::nullopt;
  return v;
}

std::optional<double> Formula::Eval(int32_t node, const std::vector<std::optional<double>>& series) const {
  const Node& n = nodes_[static_cast<size_t>(node)];
  switch (n.op) {
    case Op::kNumber: return n.number;
    case Op::kSeries: return n.series < series.size() ? series[n.series] : std::nullopt;
    case Op::kNegate: {
      auto a = Eval(n.a, series);
      if (!a) return std::nullopt;
      return -*a;
    }
    default: break;
  }
  auto a = Eval(n.a, series);
  if (!a) return std::nullopt;
  auto b = Eval(n.b, series);
  if (!b) return std::nullopt;
  switch (n.op) {
    case Op::kAdd: return *a + *b;
    case Op::kSubtract: return *a - *b;
    case Op::kMultiply: return *a * *b;
    case Op::kDivide:
      if (*b == 0) return std::nullopt;  // division by zero: no value, not an error
      return *a / *b;
    default: return std::nullopt;
  }
}

}  // namespace ns
