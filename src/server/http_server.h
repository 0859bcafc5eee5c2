// The HTTP server: cpp-httplib is confined to http_server.cc (slow to compile; its types
// stay out of every other header). Routes are written against server/http_types.h and
// added as lists: NativeRoutes (always), then whatever the caller adds (collection
// protocols, the operations API, the console).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

class HttpServer {
 public:
  // `accounts`: users, sessions and role keys for the auth middleware (null: project keys only).
  HttpServer(ProjectRegistry& registry, ServerOptions options, Accounts* accounts = nullptr);
  ~HttpServer();
  ServerContext& context();
  // Adds routes (before Bind). Earlier routes win when two patterns match.
  void AddRoutes(std::vector<Route> routes);
  // Binds the port; returns the port bound.
  StatusOr<int> Bind();
  // Serves until Stop() (blocking).
  void Serve();
  void Stop();
  // Whether Serve() has started its accept loop (Stop() before that does nothing).
  bool Listening() const;
  // Connections open now (for tests and /metrics).
  size_t open_connections();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ns
