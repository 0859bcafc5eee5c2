// Trends formulas ("A / B * 100", docs/queries.md "Formulas"): a deliberately small
// arithmetic language, parsed once into a tree and evaluated per interval. Grammar:
//
//   expr   := term (('+' | '-') term)*
//   term   := unary (('*' | '/') unary)*
//   unary  := '-' unary | primary
//   primary:= NUMBER | LETTER | '(' expr ')'
//
// NUMBER is digits with an optional fraction (12, 0.5, .5); LETTER is A–Z (or a–z), the
// series in request order (A is series[0]). Spaces are ignored. Nothing else is accepted:
// no functions, no names, nothing evaluated beyond these five operations.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

class Formula {
 public:
  // Longest formula text and deepest nesting accepted (bounds the parser's recursion).
  static constexpr size_t kMaxLength = 500;
  static constexpr int kMaxDepth = 50;

  // Parses `text` over `series` series (letters A .. A + series - 1). Errors are
  // InvalidArgument naming `field` and the 1-based character position:
  // "formula: unexpected ')' at position 7".
  static StatusOr<Formula> Parse(std::string_view text, size_t series, const std::string& field);

  // The value for one interval given each series' value there (nullopt: the series has no
  // value, e.g. an average over no events). Any operand without a value, a division by
  // zero, or a result that is not finite gives nullopt (null in the answer), never an error.
  std::optional<double> Evaluate(const std::vector<std::optional<double>>& series) const;

  const std::string& text() const { return text_; }
  // The series the formula reads (ascending, no duplicates).
  const std::vector<size_t>& letters() const { return letters_; }

 private:
  enum class Op : uint8_t { kNumber, kSeries, kNegate, kAdd, kSubtract, kMultiply, kDivide };
  struct Node {
    Op op;
    double number = 0;       // kNumber
    size_t series = 0;       // kSeries
    int32_t a = -1, b = -1;  // operands (node indexes)
  };
  std::optional<double> Eval(int32_t node, const std::vector<std::optional<double>>& series) const;

  friend class FormulaParser;
  std::vector<Node> nodes_;
  int32_t root_ = -1;
  std::string text_;
  std::vector<size_t> letters_;
};

}  // namespace ns
