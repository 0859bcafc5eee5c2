#include "core/status.h"

namespace ns {

std::string_view Status::CodeName() const {
  switch (code_) {
    case StatusCode::kOk: return "ok";
    case StatusCode::kInvalidArgument: return "invalid_argument";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kAlreadyExists: return "already_exists";
    case StatusCode::kPermissionDenied: return "permission_denied";
    case StatusCode::kUnauthenticated: return "unauthenticated";
    case StatusCode::kFailedPrecondition: return "failed_precondition";
    case StatusCode::kResourceExhausted: return "resource_exhausted";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kCorruption: return "corruption";
    case StatusCode::kInternal: return "internal";
    case StatusCode::kDeadlineExceeded: return "deadline_exceeded";
  }
  return "unknown";
}

std::string_view Status::ErrorName() const {
  switch (reason_) {
    case ErrorReason::kNone: break;
    case ErrorReason::kUnsupportedMediaType: return "unsupported_media_type";
    case ErrorReason::kRateLimited: return "rate_limited";
  }
  return CodeName();
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string s(ErrorName());
  s += ": ";
  s += message_;
  if (!field_.empty()) s += " (field " + field_ + ")";
  return s;
}

}  // namespace ns
