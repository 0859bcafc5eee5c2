#include "server/http_server.h"

// The same feature macros as Debian's libcpp-httplib build: without them httplib's types
// have a different layout here than in the compiled library (one-definition rule).
#define CPPHTTPLIB_OPENSSL_SUPPORT
#define CPPHTTPLIB_ZLIB_SUPPORT
#define CPPHTTPLIB_BROTLI_SUPPORT
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>

namespace ns {

using nlohmann::json;

namespace {

void SendError(httplib::Response& res, const Status& st) {
  res.status = HttpStatusFor(st);
  res.set_content(ErrorJson(st).dump(-1, ' ', false, json::error_handler_t::replace), "application/json; charset=utf-8");
}

HttpRequest Convert(const httplib::Request& req) {
  HttpRequest r;
  r.method = req.method;
  r.path = req.path;
  r.body = req.body;
  r.remote_addr = req.remote_addr;
  for (size_t i = 0; i < req.matches.size(); ++i) r.matches.push_back(req.matches[i].str());
  for (const auto& [k, v] : req.params) r.params.emplace_back(k, v);
  for (const auto& [k, v] : req.headers) {
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    r.headers.emplace_back(std::move(lower), v);
  }
  return r;
}

}  // namespace

struct HttpServer::Impl {
  ServerContext ctx;
  httplib::Server svr;

  Impl(ProjectRegistry& r, ServerOptions o) : ctx(r, std::move(o)) {}

  void Add(Route route) {
    auto h = [handler = std::move(route.handler)](const httplib::Request& req, httplib::Response& res) {
      HttpRequest in = Convert(req);
      HttpResponse out;
      handler(in, out);
      res.status = out.status;
      for (auto& [k, v] : out.headers) res.set_header(k.c_str(), v);
      if (!out.body.empty() || out.status != 204) res.set_content(std::move(out.body), out.content_type.c_str());
    };
    const std::string& m = route.method;
    if (m == "GET") svr.Get(route.pattern, h);
    // POST bodies are read through a content reader: cpp-httplib otherwise parses
    // application/x-www-form-urlencoded bodies itself and refuses those over 8 KiB with 413
    // (Sensors Data and PostHog SDKs send forms). The size limit and gzip still apply.
    else if (m == "POST")
      svr.Post(route.pattern, [h](const httplib::Request& req, httplib::Response& res, const httplib::ContentReader& read) {
        httplib::Request full = req;
        if (!read([&full](const char* data, size_t n) {
              full.body.append(data, n);
              return true;
            })) {
          if (res.status < 400) res.status = 400;  // read_content set 413/415/400; error handler writes the body
          return;
        }
        h(full, res);
      });
    else if (m == "PATCH") svr.Patch(route.pattern, h);
    else if (m == "PUT") svr.Put(route.pattern, h);
    else if (m == "DELETE") svr.Delete(route.pattern, h);
    else if (m == "OPTIONS") svr.Options(route.pattern, h);
    else spdlog::error("route {} {}: unsupported method", m, route.pattern);
  }

  void Setup() {
    svr.set_payload_max_length(ctx.opt.limits.max_body_bytes + 1024);
    // Without TCP_NODELAY every response waits ~40 ms for delayed ACKs (Nagle); SDKs keep
    // connections alive, so let them reuse one for many requests.
    svr.set_tcp_nodelay(true);
    // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server silently share
    // a port that is in use; keep SO_REUSEADDR only, so binding a busy port fails loudly.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
    });
    svr.set_keep_alive_max_count(10000);
    svr.set_keep_alive_timeout(30);
    svr.new_task_queue = [n = ctx.opt.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unexpected error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("request failed: {}", what);
      SendError(res, Internal(what));
    });
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        SendError(res, ResourceExhausted("request body is over the limit"));
      else if (res.status == 404)
        SendError(res, NotFound("no route " + req.method + " " + req.path));
      else
        res.set_content(json{{"error", {{"code", "http_" + std::to_string(res.status)},
                                        {"message", res.status == 400 ? "malformed HTTP request (a POST without a body needs "
                                                                        "'Content-Length: 0')"
                                                                      : "request failed"}}}}
                            .dump(),
                        "application/json; charset=utf-8");
    });
    for (auto& r : NativeRoutes(ctx)) Add(std::move(r));
  }
};

HttpServer::HttpServer(ProjectRegistry& registry, ServerOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {
  impl_->Setup();
}

HttpServer::~HttpServer() { Stop(); }

ServerContext& HttpServer::context() { return impl_->ctx; }

void HttpServer::AddRoutes(std::vector<Route> routes) {
  for (auto& r : routes) impl_->Add(std::move(r));
}

StatusOr<int> HttpServer::Bind() {
  int port = impl_->ctx.opt.port;
  const std::string& host = impl_->ctx.opt.host;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(host);
    if (port < 0) return Unavailable("cannot bind " + host + " to a free port");
  } else if (!impl_->svr.bind_to_port(host, port)) {
    return Unavailable("cannot listen on " + host + ":" + std::to_string(port) + " (in use? try --port 0 for a free port)");
  }
  return port;
}

void HttpServer::Serve() { impl_->svr.listen_after_bind(); }
void HttpServer::Stop() {
  if (impl_) impl_->svr.stop();
}

}  // namespace ns
