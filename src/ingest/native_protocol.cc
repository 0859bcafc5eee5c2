#include "ingest/native_protocol.h"

namespace ns {

StatusOr<CollectResult> ParseNative(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                    const IngestLimits& limits, const KeyResolver& resolve) {
  CollectResult out;
  out.key = req.bearer;
  out.key_source = req.bearer.empty() ? KeySource::kNone : KeySource::kBearer;
  NS_ASSIGN_OR_RETURN(const TimeZone* project_tz, resolve(out));
  const std::string_view mime = req.content_type;
  const bool ndjson = mime == "application/x-ndjson" || mime == "application/ndjson" || mime == "application/jsonl";
  // `curl -d` labels bodies application/x-www-form-urlencoded: accept them when they are JSON.
  const bool form_json =
      mime == "application/x-www-form-urlencoded" && !req.body.empty() && (req.body[0] == '[' || req.body[0] == '{');
  if (!ndjson && !form_json && !mime.empty() && mime != "application/json" && mime != "text/plain")
    return UnsupportedMediaType("unsupported Content-Type '" + std::string(mime) +
                                "' (expected application/json or application/x-ndjson)");
  std::string_view body = req.body;
  std::string inflated;
  const std::string_view enc = req.content_encoding;
  // cpp-httplib (built with zlib) already inflates bodies sent with Content-Encoding: gzip;
  // inflate here only what is still gzip (by its magic bytes), whatever the header says.
  if (enc.empty() || enc == "gzip") {
    NS_ASSIGN_OR_RETURN(body, MaybeGunzip(body, limits.max_body_bytes, &inflated));
  } else if (enc != "identity" && enc != "deflate") {
    return UnsupportedMediaType("unsupported Content-Encoding '" + std::string(enc) + "' (expected gzip or identity)");
  }
  NS_ASSIGN_OR_RETURN(out.batch, ParseNativeBatch(body, ndjson, project_tz ? *project_tz : tz, now_ms, limits));
  out.received = out.batch.events.size() + out.batch.errors.size();
  return out;
}

}  // namespace ns
