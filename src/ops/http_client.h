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
// timeout, TLS) are Unavailable, a malformed URL is InvalidArgument, a refused address
// PermissionDenied. A plain-http host is resolved once and connected to at the checked
// address (the Host header keeps the name); https connects by name for its certificate check.
// Outgoing calls refuse hosts that are (or resolve to) loopback, private, link-local, CGNAT,
// unspecified or multicast addresses, so a webhook URL cannot reach the server's own network
// (finding 10 of docs/reliability.md). `serve --allow-private-webhooks` turns this off for
// on-premise receivers. Process-wide; tests of local receivers allow it.
void SetAllowPrivateAddresses(bool allow);
bool AllowPrivateAddresses();
// PermissionDenied when the host of `authority` ("host", "host:port", "[v6]:port") is an IP
// literal in a refused range (any spelling inet_aton accepts: 0x7f000001, 2130706433, 127.1)
// or localhost; OK for other names (checked when resolved, on send).
Status CheckWebhookHostLiteral(const std::string& authority);

StatusOr<HttpClientResponse> HttpPost(const std::string& url,
                                      const std::vector<std::pair<std::string, std::string>>& headers,
                                      const std::string& body, int64_t timeout_ms);

}  // namespace ns
