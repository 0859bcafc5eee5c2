#include "ops/http_client.h"

// The Debian build of libcpp-httplib is compiled with OpenSSL, zlib and Brotli support
// (see cpp-httplib.pc Cflags). The same macros must be set here: several httplib classes
// (Request, ClientImpl) have members that exist only with CPPHTTPLIB_OPENSSL_SUPPORT, so a
// mismatch would give this TU a different object layout than the library.
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_OPENSSL_SUPPORT
#endif
#ifndef CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#endif
#ifndef CPPHTTPLIB_BROTLI_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#endif
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <exception>

namespace ns {
namespace {

struct ParsedUrl {
  std::string scheme_host_port;  // "https://example.com:8443"
  std::string path_and_query;    // "/hook?x=1", at least "/"
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
  std::string tail = slash == std::string::npos ? std::string() : url.substr(slash);
  size_t hash = tail.find('#');
  if (hash != std::string::npos) tail.resize(hash);  // fragments never go on the wire
  if (tail.empty() || tail[0] != '/') tail.insert(tail.begin(), '/');
  out.path_and_query = std::move(tail);
  return out;
}

}  // namespace

StatusOr<HttpClientResponse> HttpPost(const std::string& url,
                                      const std::vector<std::pair<std::string, std::string>>& headers,
                                      const std::string& body, int64_t timeout_ms) {
  NS_ASSIGN_OR_RETURN(ParsedUrl parsed, SplitUrl(url));
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
