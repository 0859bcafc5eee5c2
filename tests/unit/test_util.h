// Helpers shared by unit tests: temporary directories and gmock matchers for Status and
// StatusOr.
//
//   EXPECT_THAT(store.Append(...), IsOk());
//   EXPECT_THAT(ValidateScenario(body, nullptr), StatusIs(StatusCode::kInvalidArgument));
//   EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown field")));
//   EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, _, "period.to"));  // and the field
//
// Both matchers take a Status or any StatusOr<T>; on failure gtest prints the whole status
// ("invalid_argument: name: required (field name)"), not its bytes.
#pragma once

#include <gmock/gmock.h>

#include <cstdlib>
#include <filesystem>
#include <ostream>
#include <string>
#include <utility>

#include "core/status.h"

namespace ns {

// gtest value printers (found by ADL): a failed EXPECT_EQ(st.code(), ...) or matcher shows
// "invalid_argument", and a Status its code, message and field.
inline void PrintTo(StatusCode code, std::ostream* os) { *os << Status(code, "").CodeName(); }
inline void PrintTo(const Status& st, std::ostream* os) { *os << st.ToString(); }
template <typename T>
void PrintTo(const StatusOr<T>& so, std::ostream* os) {
  if (so.ok())
    *os << "OK (a value)";
  else
    *os << so.status().ToString();
}

namespace testing {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "nstest-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? p : tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

namespace internal {

inline const Status& StatusOf(const Status& st) { return st; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& so) {
  return so.status();
}

// Polymorphic: matches a Status or a StatusOr<T> of any T.
class StatusIsMatcher {
 public:
  StatusIsMatcher(StatusCode code, ::testing::Matcher<const std::string&> message,
                  ::testing::Matcher<const std::string&> field)
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  template <typename S>
  bool MatchAndExplain(const S& value, ::testing::MatchResultListener* listener) const {
    const Status& st = StatusOf(value);
    if (st.code() != code_) {
      *listener << "whose status is " << st.ToString();
      return false;
    }
    ::testing::StringMatchResultListener why;
    if (!message_.MatchAndExplain(st.message(), &why)) {
      *listener << "whose message \"" << st.message() << "\" does not match" << (why.str().empty() ? "" : ", ")
                << why.str();
      return false;
    }
    if (!field_.MatchAndExplain(st.field(), &why)) {
      *listener << "whose field \"" << st.field() << "\" does not match" << (why.str().empty() ? "" : ", ")
                << why.str();
      return false;
    }
    return true;
  }
  void DescribeTo(std::ostream* os) const {
    *os << "has status code " << Status(code_, "").CodeName() << ", a message that ";
    message_.DescribeTo(os);
    *os << " and a field that ";
    field_.DescribeTo(os);
  }
  void DescribeNegationTo(std::ostream* os) const {
    *os << "does not have status code " << Status(code_, "").CodeName() << " or has a message that ";
    message_.DescribeNegationTo(os);
    *os << " or a field that ";
    field_.DescribeNegationTo(os);
  }

 private:
  StatusCode code_;
  ::testing::Matcher<const std::string&> message_;
  ::testing::Matcher<const std::string&> field_;
};

class IsOkMatcher {
 public:
  template <typename S>
  bool MatchAndExplain(const S& value, ::testing::MatchResultListener* listener) const {
    const Status& st = StatusOf(value);
    if (!st.ok()) *listener << "whose status is " << st.ToString();
    return st.ok();
  }
  void DescribeTo(std::ostream* os) const { *os << "is OK"; }
  void DescribeNegationTo(std::ostream* os) const { *os << "is not OK"; }
};

}  // namespace internal

// A Status or StatusOr with this code, a message matching `message` (a matcher such as
// HasSubstr("...") or a string for equality; anything by default) and a field matching
// `field` (anything by default).
template <typename MessageMatcher = decltype(::testing::_), typename FieldMatcher = decltype(::testing::_)>
::testing::PolymorphicMatcher<internal::StatusIsMatcher> StatusIs(StatusCode code,
                                                                  MessageMatcher message = ::testing::_,
                                                                  FieldMatcher field = ::testing::_) {
  return ::testing::MakePolymorphicMatcher(internal::StatusIsMatcher(
      code, ::testing::MatcherCast<const std::string&>(message), ::testing::MatcherCast<const std::string&>(field)));
}

// A Status or StatusOr that is OK.
inline ::testing::PolymorphicMatcher<internal::IsOkMatcher> IsOk() {
  return ::testing::MakePolymorphicMatcher(internal::IsOkMatcher());
}

}  // namespace testing
}  // namespace ns
