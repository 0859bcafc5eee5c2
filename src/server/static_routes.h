// The web console's files (web/dist, built by Vite) served at "/": hashed assets under
// /assets/ cached for a year as immutable, index.html revalidated on every load, gzip
// precompressed once at start, a strict Content-Security-Policy, and the SPA fallback (a
// client route such as /scenarios/3 answers index.html). The files are read into memory
// when the server starts, so a request can only ever name a file that was in the
// directory then: no path from a request reaches the file system.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "server/http_types.h"

namespace ns {

struct ConsoleAssets;  // the loaded files (static_routes.cc)

// Loads every regular file under `dir` (symbolic links are skipped). InvalidArgument when
// `dir` has no index.html; ResourceExhausted over 256 MiB in all.
StatusOr<std::shared_ptr<const ConsoleAssets>> LoadConsoleAssets(const std::string& dir);
// The directory `serve` uses when --console-dir is not given: the first of
// <binary>/../web/dist and ./web/dist that has an index.html; "" if none.
std::string DefaultConsoleDir();
// Number of files loaded (for the start-up log).
size_t ConsoleFileCount(const ConsoleAssets& assets);

// GET (and HEAD) of any path no earlier route matched: a console file, or index.html for a
// client route. /api/... stays a JSON 404, so a mistyped API call never answers HTML.
// `assets` null: "/" explains that the console is not installed.
std::vector<Route> StaticRoutes(std::shared_ptr<const ConsoleAssets> assets);

}  // namespace ns
