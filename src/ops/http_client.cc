#include "ops/http_client.h"

#include "core/httplib_checked.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstring>
#include <exception>

namespace ns {
namespace {

std::atomic<bool> g_allow_private{false};

// Refused destinations: RFC 1918, loopback, link-local, CGNAT, "this network", multicast and
// reserved, and their IPv6 counterparts (including v4-mapped addresses).
bool RefusedV4(uint32_t a) {  // host byte order
  auto in = [a](uint32_t net, int bits) { return bits == 0 || (a >> (32 - bits)) == (net >> (32 - bits)); };
  return in(0x00000000, 8) || in(0x0A000000, 8) || in(0x64400000, 10) || in(0x7F000000, 8) || in(0xA9FE0000, 16) ||
         in(0xAC100000, 12) || in(0xC0000000, 24) || in(0xC0A80000, 16) || in(0xC6120000, 15) || in(0xE0000000, 4) ||
         in(0xF0000000, 4);
}

bool RefusedV6(const in6_addr& a) {
  const uint8_t* b = a.s6_addr;
  static const uint8_t kZero[16] = {};
  if (std::memcmp(b, kZero, 15) == 0 && (b[15] == 0 || b[15] == 1)) return true;  // :: and ::1
  if (IN6_IS_ADDR_V4MAPPED(&a) || IN6_IS_ADDR_V4COMPAT(&a)) {
    uint32_t v4 = (uint32_t{b[12]} << 24) | (uint32_t{b[13]} << 16) | (uint32_t{b[14]} << 8) | b[15];
    return RefusedV4(v4);
  }
  if ((b[0] & 0xfe) == 0xfc) return true;                  // fc00::/7 unique local
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return true;  // fe80::/10 link-local
  if (b[0] == 0xff) return true;                           // multicast
  return false;
}

std::string AddrText(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (sa->sa_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(sa)->sin_addr, buf, sizeof buf);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr, buf, sizeof buf);
  return buf;
}

bool RefusedAddr(const sockaddr* sa) {
  if (sa->sa_family == AF_INET) return RefusedV4(ntohl(reinterpret_cast<const sockaddr_in*>(sa)->sin_addr.s_addr));
  if (sa->sa_family == AF_INET6) return RefusedV6(reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
  return true;
}

std::string RefusalMessage(const std::string& host, const std::string& addr) {
  return "webhook host '" + host + "' is " + (host == addr ? "" : "at ") + addr +
         ", a loopback, private or link-local address: refused so hooks cannot reach the server's own network "
         "(start the server with --allow-private-webhooks for on-premise receivers)";
}

// Host and port of "host", "host:port", "[v6]:port".
void SplitHostPort(const std::string& authority, bool https, std::string* host, int* port) {
  *port = https ? 443 : 80;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    *host = authority.substr(1, close == std::string::npos ? std::string::npos : close - 1);
    if (close != std::string::npos && close + 1 < authority.size() && authority[close + 1] == ':')
      *port = std::atoi(authority.c_str() + close + 2);
    return;
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(':') == colon) {
    *host = authority.substr(0, colon);
    *port = std::atoi(authority.c_str() + colon + 1);
  } else {
    *host = authority;
  }
}

struct ParsedUrl {
  std::string scheme_host_port;  // "https://example.com:8443"
  std::string path_and_query;    // "/hook?x=1", at least "/"
  std::string authority;         // "example.com:8443"
  bool https = false;
};

StatusOr<ParsedUrl> SplitUrl(const std::string& url) {
  std::string scheme;
  size_t rest = 0;
  if (url.rfind("http://", 0) == 0) {
    scheme = "http";
    rest = 7;
  } else if (url.rfind("https://", 0) == 0) {
    scheme = "https";
    rest = 8;
  } else {
    return InvalidArgument("URL must start with http:// or https://: '" + url + "'", "url");
  }
  size_t slash = url.find_first_of("/?#", rest);
  std::string authority = url.substr(rest, slash == std::string::npos ? std::string::npos : slash - rest);
  if (authority.empty()) return InvalidArgument("URL has no host: '" + url + "'", "url");
  if (authority.find('@') != std::string::npos) {
    return InvalidArgument("URL must not contain user info: '" + url + "'", "url");
  }
  ParsedUrl out;
  out.scheme_host_port = scheme + "://" + authority;
  out.authority = authority;
  out.https = scheme == "https";
  std::string tail = slash == std::string::npos ? std::string() : url.substr(slash);
  size_t hash = tail.find('#');
  if (hash != std::string::npos) tail.resize(hash);  // fragments never go on the wire
  if (tail.empty() || tail[0] != '/') tail.insert(tail.begin(), '/');
  out.path_and_query = std::move(tail);
  return out;
}

}  // namespace

void SetAllowPrivateAddresses(bool allow) { g_allow_private = allow; }
bool AllowPrivateAddresses() { return g_allow_private; }

Status CheckWebhookHostLiteral(const std::string& authority) {
  if (g_allow_private) return Status::OK();
  std::string host;
  int port = 0;
  SplitHostPort(authority, false, &host, &port);
  std::string lower = host;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  if (lower == "localhost" || (lower.size() > 10 && lower.compare(lower.size() - 10, 10, ".localhost") == 0))
    return PermissionDenied(RefusalMessage(host, "loopback"));
  in_addr v4{};
  if (inet_aton(host.c_str(), &v4) != 0 && RefusedV4(ntohl(v4.s_addr))) {
    char buf[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &v4, buf, sizeof buf);
    return PermissionDenied(RefusalMessage(host, buf));
  }
  in6_addr v6{};
  if (inet_pton(AF_INET6, host.c_str(), &v6) == 1 && RefusedV6(v6)) return PermissionDenied(RefusalMessage(host, host));
  return Status::OK();
}

StatusOr<HttpClientResponse> HttpPost(const std::string& url,
                                      const std::vector<std::pair<std::string, std::string>>& headers,
                                      const std::string& body, int64_t timeout_ms) {
  NS_ASSIGN_OR_RETURN(ParsedUrl parsed, SplitUrl(url));
  // Resolve once and check every address; the client then connects to the checked address
  // (its host-to-address map), so a second lookup cannot answer differently (DNS rebinding),
  // while the Host header and the TLS name stay the URL's.
  std::string host;
  int port = 0;
  SplitHostPort(parsed.authority, parsed.https, &host, &port);
  std::string checked_address;
  if (!g_allow_private) {
    NS_RETURN_IF_ERROR(CheckWebhookHostLiteral(host));
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    if (rc != 0)
      return Unavailable("POST " + parsed.scheme_host_port + ": cannot resolve '" + host + "': " + gai_strerror(rc));
    Status refused;
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
      if (RefusedAddr(ai->ai_addr)) {
        refused = PermissionDenied(RefusalMessage(host, AddrText(ai->ai_addr)));
        break;
      }
      if (checked_address.empty()) checked_address = AddrText(ai->ai_addr);
    }
    freeaddrinfo(res);
    NS_RETURN_IF_ERROR(refused);
  }
  try {
    httplib::Client client(parsed.scheme_host_port);
    if (!client.is_valid()) {
      return InvalidArgument("cannot use URL '" + url + "' (bad host or port)", "url");
    }
    timeout_ms = std::max<int64_t>(timeout_ms, 1);
    const time_t sec = static_cast<time_t>(timeout_ms / 1000);
    const time_t usec = static_cast<time_t>((timeout_ms % 1000) * 1000);
    client.set_connection_timeout(sec, usec);
    client.set_read_timeout(sec, usec);
    client.set_write_timeout(sec, usec);
    client.set_follow_location(false);  // a hook that redirects is misconfigured; report it
    if (!checked_address.empty()) client.set_hostname_addr_map({{host, checked_address}});

    httplib::Headers h;
    std::string content_type = "application/octet-stream";
    for (const auto& [k, v] : headers) {
      std::string lower = k;
      std::transform(lower.begin(), lower.end(), lower.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (lower == "content-type") {
        content_type = v;
      } else {
        h.emplace(k, v);
      }
    }
    httplib::Result res = client.Post(parsed.path_and_query, h, body, content_type);
    if (!res) {
      return Unavailable("POST " + parsed.scheme_host_port + ": " + httplib::to_string(res.error()));
    }
    HttpClientResponse out;
    out.status = res->status;
    out.body = res->body;
    for (const auto& [k, v] : res->headers) out.headers.emplace_back(k, v);
    return out;
  } catch (const std::exception& e) {
    return Unavailable("POST " + parsed.scheme_host_port + ": " + e.what());
  }
}

}  // namespace ns
