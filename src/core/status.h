// Status and StatusOr: the error type of every fallible path in Northstar.
// Codes are the canonical set (absl/gRPC). What a client needs beyond the code travels as a
// typed detail (ErrorReason, retry_after_ms), set by the producer and read at the edge:
// server/http_types.cc alone turns a Status into an HTTP status and headers, so nothing is
// parsed out of message text. Success is cheap: an OK Status holds no string and allocates
// nothing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
  kResourceExhausted,  // a limit: body or result too large, rate limited (see ErrorReason)
  kUnavailable,        // disk full, read-only, shutting down: retryable
  kCorruption,         // checksum or invariant failure on disk
  kInternal,
  kDeadlineExceeded,  // a query ran past its deadline or its client went away
};

// Why an error happened, when a client acts on it differently from the bare code. Each
// refines one code; clients see its name as the error code ("rate_limited").
enum class ErrorReason : uint8_t {
  kNone = 0,
  kUnsupportedMediaType,  // kInvalidArgument: a body's content type or encoding is refused
  kRateLimited,           // kResourceExhausted: too many requests for a key or an account;
                          // retryable, usually with retry_after_ms
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
  ErrorReason reason() const { return reason_; }
  // How long the caller should wait before retrying; unset when the producer cannot tell.
  std::optional<int64_t> retry_after_ms() const { return retry_after_ms_; }

  // Typed detail, chained on a temporary: ResourceExhausted(m).WithReason(...).
  Status WithReason(ErrorReason r) && {
    reason_ = r;
    return std::move(*this);
  }
  Status WithRetryAfterMs(int64_t ms) && {
    retry_after_ms_ = ms;
    return std::move(*this);
  }

  // "code: message (field name)" for logs.
  std::string ToString() const;
  // Canonical snake_case name of the code ("resource_exhausted").
  std::string_view CodeName() const;
  // The error code clients see in JSON bodies: the reason's name when there is one
  // ("rate_limited", "unsupported_media_type"), else CodeName().
  std::string_view ErrorName() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  ErrorReason reason_ = ErrorReason::kNone;
  std::optional<int64_t> retry_after_ms_;
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
// kResourceExhausted for a caller over its rate; retry after `retry_after_ms`.
inline Status RateLimited(std::string m, int64_t retry_after_ms) {
  return Status(StatusCode::kResourceExhausted, std::move(m))
      .WithReason(ErrorReason::kRateLimited)
      .WithRetryAfterMs(retry_after_ms);
}
// kInvalidArgument for a body whose content type or encoding is not accepted.
inline Status UnsupportedMediaType(std::string m) {
  return Status(StatusCode::kInvalidArgument, std::move(m)).WithReason(ErrorReason::kUnsupportedMediaType);
}
inline Status DeadlineExceeded(std::string m) { return Status(StatusCode::kDeadlineExceeded, std::move(m)); }
inline Status Internal(std::string m) { return Status(StatusCode::kInternal, std::move(m)); }

template <typename T>
class [[nodiscard]] StatusOr {
 public:
  StatusOr(Status s) : v_(std::move(s)) {}     // NOLINT: implicit by design
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

#define NS_RETURN_IF_ERROR(expr)     \
  do {                               \
    ::ns::Status _ns_st = (expr);    \
    if (!_ns_st.ok()) return _ns_st; \
  } while (0)

#define NS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(tmp).value()

#define NS_ASSIGN_OR_RETURN(lhs, expr) NS_ASSIGN_OR_RETURN_IMPL(NS_CONCAT(_ns_so_, __LINE__), lhs, expr)
