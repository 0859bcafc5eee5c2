// Status and StatusOr: the error type of every fallible path in Northstar.
// Codes follow the canonical set (absl/gRPC) and map one-to-one to HTTP statuses
// (see HttpStatusFor in server/). Success is cheap: an OK Status holds no string.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ns {

enum class StatusCode {
  kOk = 0,
  kInvalidArgument,
  kNotFound,
  kAlreadyExists,
  kPermissionDenied,
  kUnauthenticated,
  kFailedPrecondition,
  kResourceExhausted,  // limits: body too large, rate limited
  kUnavailable,        // disk full, read-only, shutting down: retryable
  kCorruption,         // checksum or invariant failure on disk
  kInternal,
  kUnsupportedMediaType,
  kRateLimited,  // too many requests for a key: retry after a delay (HTTP 429)
  kDeadlineExceeded,  // a query ran past its deadline or its client went away (HTTP 504)
};

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message, std::string field = {})
      : code_(code), message_(std::move(message)), field_(std::move(field)) {}

  static Status OK() { return Status(); }
  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // The input field the error is about ("events[3].timestamp"), empty if none.
  const std::string& field() const { return field_; }
  std::string ToString() const;
  // Canonical snake_case name of the code, used in JSON error bodies.
  std::string_view CodeName() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
  std::string field_;
};

inline Status InvalidArgument(std::string m, std::string field = {}) {
  return Status(StatusCode::kInvalidArgument, std::move(m), std::move(field));
}
inline Status NotFound(std::string m) { return Status(StatusCode::kNotFound, std::move(m)); }
inline Status AlreadyExists(std::string m) { return Status(StatusCode::kAlreadyExists, std::move(m)); }
inline Status PermissionDenied(std::string m) { return Status(StatusCode::kPermissionDenied, std::move(m)); }
inline Status Unauthenticated(std::string m) { return Status(StatusCode::kUnauthenticated, std::move(m)); }
inline Status FailedPrecondition(std::string m) { return Status(StatusCode::kFailedPrecondition, std::move(m)); }
inline Status ResourceExhausted(std::string m) { return Status(StatusCode::kResourceExhausted, std::move(m)); }
inline Status Unavailable(std::string m) { return Status(StatusCode::kUnavailable, std::move(m)); }
inline Status Corruption(std::string m) { return Status(StatusCode::kCorruption, std::move(m)); }
inline Status RateLimited(std::string m) { return Status(StatusCode::kRateLimited, std::move(m)); }
inline Status DeadlineExceeded(std::string m) { return Status(StatusCode::kDeadlineExceeded, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : v_(std::move(s)) {}  // NOLINT: implicit by design
  StatusOr(T value) : v_(std::move(value)) {}  // NOLINT
  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<Status, T> v_;
};

}  // namespace ns

#define NS_CONCAT_INNER(a, b) a##b
#define NS_CONCAT(a, b) NS_CONCAT_INNER(a, b)

#define NS_RETURN_IF_ERROR(expr)            \
  do {                                      \
    ::ns::Status _ns_st = (expr);           \
    if (!_ns_st.ok()) return _ns_st;        \
  } while (0)

#define NS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define NS_ASSIGN_OR_RETURN(lhs, expr) NS_ASSIGN_OR_RETURN_IMPL(NS_CONCAT(_ns_so_, __LINE__), lhs, expr)
