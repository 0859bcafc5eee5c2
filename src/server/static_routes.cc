#include "server/static_routes.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <unordered_map>

#include "core/status.h"

namespace ns {

namespace fs = std::filesystem;

struct ConsoleFile {
  std::string body;
  std::string gzip;  // empty: not worth compressing (images, fonts, tiny files)
  std::string content_type;
  std::string etag;
  bool immutable = false;  // a Vite-hashed name under /assets/
};

struct ConsoleAssets {
  std::unordered_map<std::string, ConsoleFile> files;  // "/assets/index-3f9a.js" -> file
};

namespace {

constexpr size_t kMaxTotalBytes = size_t{256} << 20;

// Scripts and styles only from the server itself, nothing inline; no framing, no plugins.
// style-src allows inline style attributes: chart and table libraries position elements
// with them (docs/decisions.md, "The console's Content-Security-Policy").
constexpr const char* kCsp =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "font-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'";

std::string ContentTypeOf(const std::string& path) {
  static const std::unordered_map<std::string, std::string> kTypes = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json; charset=utf-8"},
      {".map", "application/json; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},
      {".webp", "image/webp"},
      {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},
      {".woff", "font/woff"},
      {".ttf", "font/ttf"},
      {".txt", "text/plain; charset=utf-8"},
      {".wasm", "application/wasm"},
      {".webmanifest", "application/manifest+json"},
  };
  std::string ext = fs::path(path).extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto it = kTypes.find(ext);
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

bool Compressible(const std::string& ctype) {
  return ctype.starts_with("text/") || ctype.find("json") != std::string::npos || ctype.starts_with("image/svg") ||
         ctype == "application/wasm";
}

// gzip at the best level (done once per file at start-up, so the time does not matter).
std::string Gzip(std::string_view in) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, in.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

std::string Etag(std::string_view body) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : body) h = (h ^ c) * 1099511628211ull;
  char buf[24];
  std::snprintf(buf, sizeof buf, "\"%016llx\"", static_cast<unsigned long long>(h));
  return buf;
}

void SecurityHeaders(HttpResponse& res) {
  res.SetHeader("Content-Security-Policy", kCsp);
  res.SetHeader("X-Content-Type-Options", "nosniff");
  res.SetHeader("Referrer-Policy", "same-origin");
  res.SetHeader("X-Frame-Options", "DENY");
}

bool AcceptsGzip(const HttpRequest& req) {
  // "gzip" listed with no q or a q above 0 (browsers send "gzip, deflate, br, zstd");
  // "gzip;q=0", "gzip;q=0.0" and "gzip;q=0.000" refuse it (RFC 9110, 12.4.2).
  std::string ae = req.Header("accept-encoding");
  size_t at = ae.find("gzip");
  if (at == std::string::npos) return false;
  size_t end = ae.find(',', at);
  std::string item = ae.substr(at, end == std::string::npos ? std::string::npos : end - at);
  size_t q = item.find("q=");
  return q == std::string::npos || std::strtod(item.c_str() + q + 2, nullptr) > 0;
}

void Serve(const HttpRequest& req, HttpResponse& res, const ConsoleFile& f) {
  SecurityHeaders(res);
  res.SetHeader("ETag", f.etag);
  res.SetHeader("Cache-Control", f.immutable ? "public, max-age=31536000, immutable" : "no-cache");
  if (!f.gzip.empty()) res.SetHeader("Vary", "Accept-Encoding");
  std::string inm = req.Header("if-none-match");
  if (!inm.empty() && (inm == f.etag || inm == "W/" + f.etag || inm == "*")) {
    res.status = 304;
    res.body.clear();
    return;
  }
  if (!f.gzip.empty() && AcceptsGzip(req)) {
    res.SetHeader("Content-Encoding", "gzip");
    res.Text(200, f.gzip, f.content_type);
  } else {
    res.Text(200, f.body, f.content_type);
  }
}

}  // namespace

StatusOr<std::shared_ptr<const ConsoleAssets>> LoadConsoleAssets(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_regular_file(fs::path(dir) / "index.html", ec))
    return InvalidArgument("console directory " + dir + " has no index.html (build the console with `make console`)");
  auto assets = std::make_shared<ConsoleAssets>();
  size_t total = 0;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  if (ec) return Unavailable("cannot read console directory " + dir + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) return Unavailable("cannot read console directory " + dir + ": " + ec.message());
    if (it->is_symlink(ec) || !it->is_regular_file(ec)) continue;
    std::string rel = fs::relative(it->path(), dir, ec).generic_string();
    if (ec || rel.empty() || rel.starts_with("..")) continue;
    // A precompressed sibling (index-3f9a.js.gz) is not served by its own name; the file's
    // gzip form is made below.
    if (rel.ends_with(".gz") || rel.ends_with(".br")) continue;
    std::ifstream in(it->path(), std::ios::binary);
    std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return Unavailable("cannot read " + it->path().string());
    total += body.size();
    if (total > kMaxTotalBytes)
      return ResourceExhausted("console directory " + dir + " holds over 256 MiB; is it the built console (web/dist)?");
    ConsoleFile f;
    f.content_type = ContentTypeOf(rel);
    f.etag = Etag(body);
    f.immutable = rel.starts_with("assets/");
    if (Compressible(f.content_type) && body.size() >= 1024) {
      std::string gz = Gzip(body);
      if (!gz.empty() && gz.size() < body.size()) f.gzip = std::move(gz);
    }
    f.body = std::move(body);
    assets->files.emplace("/" + rel, std::move(f));
  }
  return std::shared_ptr<const ConsoleAssets>(std::move(assets));
}

std::string DefaultConsoleDir() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) candidates.push_back(exe.parent_path().parent_path() / "web" / "dist");
  candidates.push_back(fs::path("web") / "dist");
  for (const auto& c : candidates)
    if (fs::is_regular_file(c / "index.html", ec)) return c.lexically_normal().string();
  return "";
}

size_t ConsoleFileCount(const ConsoleAssets& assets) { return assets.files.size(); }

// The API's and the collection endpoints' paths (docs/api.md, collect_routes.cc): a GET
// there is a wrong method or a typo, answered 404 like any unknown API path, never the
// console's index.html (an SDK or a probe must not read HTML as an answer).
static bool IsApiPath(std::string_view path) {
  for (std::string_view prefix :
       {"/api", "/v1", "/batch", "/capture", "/e", "/i", "/track", "/engage", "/sa", "/sa.gif", "/decide", "/flags"}) {
    if (path == prefix || (path.starts_with(prefix) && path[prefix.size()] == '/')) return true;
  }
  return false;
}

std::vector<Route> StaticRoutes(std::shared_ptr<const ConsoleAssets> assets) {
  HttpHandler handler = [assets](const HttpRequest& req, HttpResponse& res) {
    const std::string& path = req.path;
    if (IsApiPath(path)) return res.Error(NotFound("no route GET " + path));
    if (!assets) {
      SecurityHeaders(res);
      res.Text(
          404,
          "<!doctype html><meta charset=utf-8><title>Northstar</title><p>The Northstar API is running, but the web "
          "console is not installed. Build it with <code>make console</code> (or start the server with "
          "<code>--console-dir DIR</code>). The API is described in docs/api.md.</p>\n",
          "text/html; charset=utf-8");
      return;
    }
    auto it = assets->files.find(path);
    if (it != assets->files.end()) return Serve(req, res, it->second);
    // A missing asset, or any name with an extension, is a 404: answering index.html there
    // would make the browser run HTML as a script or stylesheet.
    std::string last = path.substr(path.rfind('/') + 1);
    if (path.starts_with("/assets/") || last.find('.') != std::string::npos) {
      SecurityHeaders(res);
      res.Text(404, "not found\n", "text/plain; charset=utf-8");
      return;
    }
    Serve(req, res, assets->files.at("/index.html"));  // a client route of the console
  };
  return {{"GET", R"(/.*)", std::move(handler), Access::kPublic}};
}

}  // namespace ns
