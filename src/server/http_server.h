// The HTTP API (docs/api.md). cpp-httplib is confined to http_server.cc: it is slow to
// compile and its types stay out of every other header.
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "core/status.h"
#include "ingest/native_parser.h"
#include "meta/project_registry.h"

namespace ns {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = pick a free port
  IngestLimits limits;
  int threads = 32;  // request threads; ingest requests block on group commit
};

// HTTP status for a Status code (400, 401, 403, 404, 409, 413, 415, 500, 503).
int HttpStatusFor(const Status& st);

class HttpServer {
 public:
  HttpServer(ProjectRegistry& registry, ServerOptions options);
  ~HttpServer();
  // Binds the port; returns the port bound.
  StatusOr<int> Bind();
  // Serves until Stop() (blocking).
  void Serve();
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ns
