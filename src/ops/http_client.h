// A minimal blocking HTTP client for outgoing calls (notification hooks). Only
// http_client.cc includes <httplib.h> (slow to compile); callers see plain types.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace ns {

struct HttpClientResponse {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

// POSTs `body` to `url` (http:// or https://, certificates verified against the system
// store). `headers` must include Content-Type. `timeout_ms` bounds connect, read and write
// separately. Any HTTP status is a successful call; network failures (DNS, refused,
// timeout, TLS) are Unavailable, a malformed URL is InvalidArgument.
StatusOr<HttpClientResponse> HttpPost(const std::string& url,
                                      const std::vector<std::pair<std::string, std::string>>& headers,
                                      const std::string& body, int64_t timeout_ms);

}  // namespace ns
