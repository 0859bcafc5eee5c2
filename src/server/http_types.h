// The HTTP request/response types every route handler sees. cpp-httplib stays inside
// http_server.cc (slow to compile); handlers in other files (native_routes.cc,
// collect_routes.cc, ops_routes.cc, ...) are written against these types and registered as
// Route lists, so subsystems add routes without touching the server or each other.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "auth/principal.h"
#include "core/cpu_class.h"
#include "core/status.h"

namespace ns {

struct HttpRequest {
  std::string method;     // GET, POST, ...
  std::string path;       // without the query string
  std::string_view body;  // as received (cpp-httplib already inflated Content-Encoding: gzip)
  std::string remote_addr;
  std::vector<std::string> matches;  // regex captures of the route pattern; [0] is the whole path
  std::vector<std::pair<std::string, std::string>> params;   // query string, URL-decoded
  std::vector<std::pair<std::string, std::string>> headers;  // names in lower case
  // Who is calling: set by the auth middleware on every route whose access is not kPublic
  // (server/auth.h), null on public routes.
  const Principal* principal = nullptr;
  // True once the client has closed its connection (set by the server; empty in tests).
  std::function<bool()> client_gone;

  // Header value by lower-case name ("" if absent).
  std::string Header(std::string_view lower_name) const;
  bool HasParam(std::string_view name) const;
  std::string Param(std::string_view name) const;  // "" if absent
  // The MIME type of Content-Type without parameters, lower case ("application/json").
  std::string MimeType() const;
  // Value of a cookie ("" if absent).
  std::string Cookie(std::string_view name) const;
};

// A body written after the head, piece by piece (Transfer-Encoding: chunked), for answers
// too large to hold whole (the people CSV exports). The producer calls `write` with each
// piece; `write` returns false once the client is gone, and the producer then stops. It runs
// after the handler returned, so it owns what it reads (a snapshot, not the request). A
// failure can only cut the body short: find errors before Stream.
using BodyWrite = std::function<bool(std::string_view piece)>;
using BodyProducer = std::function<void(const BodyWrite& write)>;

struct HttpResponse {
  int status = 200;
  std::string body;
  std::string content_type = "application/json; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;
  BodyProducer producer;  // set by Stream: the body is written by it instead

  void SetHeader(std::string name, std::string value) { headers.emplace_back(std::move(name), std::move(value)); }
  void Json(int code, const nlohmann::json& j);
  // {"error":{"code","message","field"}} with HttpStatusFor(st). Retry-After: the status's
  // retry_after_ms in whole seconds, else 5 on 503 and 1 on 429.
  void Error(const Status& st);
  void Text(int code, std::string text, std::string ctype);
  void Stream(int code, std::string ctype, BodyProducer body_producer);
};

using HttpHandler = std::function<void(const HttpRequest&, HttpResponse&)>;

// What a route needs of its caller. The server's auth middleware (server/auth.h) checks it
// on the request head, before the body is read or inflated, so an unauthenticated client
// cannot make the server read, inflate or buffer a body; the handler then finds the caller
// in HttpRequest::principal.
enum class Access {
  kPublic,    // anyone (login, health, metrics, the console's files, collection protocols
              // that find their key inside the body and check it themselves)
  kIngest,    // a project's write key or secret key: sending events
  kViewer,    // reading: a secret key, an API key or a logged-in user with any role
  kOperator,  // changing scenarios, actions, KPIs, alerts
  kAdmin,     // users, keys, channels, settings
};

struct Route {
  std::string method;   // GET | POST | PATCH | PUT | DELETE | OPTIONS
  std::string pattern;  // ECMAScript regex over the whole path, e.g. R"(/api/v1/scenarios/(\d+))"
  HttpHandler handler;
  Access access = Access::kPublic;
  // The request worker's CPU class while it serves this route (core/cpu_class.h): bulk for
  // event collection, so ingest yields the CPU to queries.
  CpuClass cpu = CpuClass::kInteractive;
};

// HTTP status of a Status: its reason first (415 unsupported media type, 429 rate limited),
// else its code (400, 401, 403, 404, 409, 413, 500, 503, 504).
int HttpStatusFor(const Status& st);
// The error body of a Status; "code" is Status::ErrorName() ("rate_limited").
nlohmann::json ErrorJson(const Status& st);

// URL decoding (%XX; '+' as space when plus_is_space) and form/query parsing.
std::string UrlDecode(std::string_view s, bool plus_is_space);
std::vector<std::pair<std::string, std::string>> ParseUrlEncoded(std::string_view s);

// Parses a JSON body; InvalidArgument with the parser's message on malformed input.
StatusOr<nlohmann::json> ParseJsonBody(std::string_view body);

}  // namespace ns
