#include "ingest/posthog_protocol.h"

#include <optional>

#include "ingest/gzip.h"

namespace ns {

using nlohmann::json;

namespace {

// PostHog moves events more than 23 hours in the future to the receive time
// (plugin-server parseEventTimestamp).
constexpr int64_t kFutureClampMs = 23LL * 3600 * 1000;

bool LooksLikeJson(std::string_view s) {
  size_t i = s.find_first_not_of(" \t\r\n");
  return i != std::string_view::npos && (s[i] == '{' || s[i] == '[');
}

// Decodes the payload: gzip (magic bytes or compression=gzip|gzip-js), else JSON text, else
// base64 of either. `storage` keeps decoded bytes.
StatusOr<std::string_view> DecodePayload(std::string_view data, const std::string& compression, const char* what,
                                         const IngestLimits& limits, std::string* storage) {
  if (compression == "lz64")
    return InvalidArgument(
        "compression=lz64 (lz-string) is not supported; configure the SDK with compression gzip-js or base64, or "
        "none",
        "compression");
  if (!compression.empty() && compression != "gzip" && compression != "gzip-js" && compression != "base64")
    return InvalidArgument(
        "unknown compression '" + EscapeInvalidUtf8(compression) + "' (expected gzip, gzip-js or base64)",
        "compression");
  const bool gzip_expected = compression == "gzip" || compression == "gzip-js";
  if (!LooksGzipped(data) && !LooksLikeJson(data) && !data.empty()) {
    auto decoded = Base64Decode(data);
    if (!decoded.ok())
      return InvalidArgument(std::string(what) + " is neither JSON, gzip nor base64: " + decoded.status().message(),
                             what);
    *storage = std::move(decoded).value();
    data = *storage;
  }
  if (LooksGzipped(data)) {
    std::string inflated;
    NS_ASSIGN_OR_RETURN(std::string_view out, MaybeGunzip(data, limits.max_body_bytes, &inflated));
    (void)out;
    *storage = std::move(inflated);
    return std::string_view(*storage);
  }
  if (gzip_expected)
    return InvalidArgument(std::string(what) + ": compression=" + compression + " but the data is not gzip", what);
  NS_RETURN_IF_ERROR(CheckBodySize(data.size(), limits, std::string(what) + " after decoding"));
  return data;
}

// The project key of a payload: api_key, token or $token at the top level (of the batch
// object or of the event), or token / $token in the event's properties.
std::string KeyOf(const json& obj) {
  for (const char* k : {"api_key", "token", "$token"})
    if (const json* v = FindMember(obj, k); v != nullptr && v->is_string() && !v->get_ref<const std::string&>().empty())
      return v->get<std::string>();
  if (const json* props = FindMember(obj, "properties"))
    for (const char* k : {"token", "$token"})
      if (const json* v = FindMember(*props, k);
          v != nullptr && v->is_string() && !v->get_ref<const std::string&>().empty())
        return v->get<std::string>();
  return {};
}

// PostHog's event time: timestamp + (now - sent_at) when both are known (sent_at unless
// properties.$ignore_sent_at), timestamp alone, now - offset, or now; then anything more
// than 23 h in the future becomes now.
StatusOr<int64_t> EventTime(const json& e, const std::string& where, std::optional<int64_t> batch_sent_at,
                            const TimeZone& tz, int64_t now_ms) {
  int64_t ts = now_ms;
  const json* t = FindMember(e, "timestamp");
  if (t != nullptr && !t->is_null()) {
    NS_ASSIGN_OR_RETURN(ts, TimestampFromJson(*t, where + ".timestamp", tz));
    std::optional<int64_t> sent = batch_sent_at;
    if (const json* s = FindMember(e, "sent_at"); s != nullptr && !s->is_null()) {
      auto v = TimestampFromJson(*s, where + ".sent_at", tz);
      if (v.ok()) sent = *v;  // PostHog ignores an invalid sent_at
    }
    const json* props = FindMember(e, "properties");
    const json* ignore = props != nullptr ? FindMember(*props, "$ignore_sent_at") : nullptr;
    if (sent && !(ignore != nullptr && ignore->is_boolean() && ignore->get<bool>())) {
      NS_ASSIGN_OR_RETURN(ts, CorrectClockSkew(ts, *sent, now_ms, where + ".timestamp"));
    }
  } else if (const json* off = FindMember(e, "offset"); off != nullptr && off->is_number()) {
    const double o = off->get<double>();
    if (!(o >= 0 && o < 1e15))
      return InvalidArgument(where + ".offset: expected milliseconds between 0 and 1e15, got " + off->dump(),
                             where + ".timestamp");
    ts = now_ms - static_cast<int64_t>(o);
  }
  if (ts > now_ms && ts - now_ms > kFutureClampMs) ts = now_ms;
  return ts;
}

void AddPostHogEvent(json& e, bool engage, size_t index, const std::string& where, std::optional<int64_t> batch_sent_at,
                     const TimeZone& tz, int64_t now_ms, const IngestLimits& limits, size_t approx_bytes,
                     ParsedBatch* out) {
  if (!e.is_object()) {
    RejectEvent(out, index, InvalidArgument(where + ": expected an event object, got " + e.type_name(), where), false);
    return;
  }
  if (engage && !e.contains("event")) e["event"] = "$identify";  // /engage: person updates
  std::string did;
  const json* props = FindMember(e, "properties");
  for (const json* v : {FindMember(e, "distinct_id"), FindMember(e, "$distinct_id"),
                        props != nullptr ? FindMember(*props, "distinct_id") : nullptr}) {
    auto id = IdFromJson(v, where + ".distinct_id");
    if (!id.ok()) {
      RejectEvent(out, index, id.status(), false);
      return;
    }
    if (!id->empty()) {
      did = std::move(id).value();
      break;
    }
  }
  if (did.empty()) {
    RejectEvent(out, index,
                InvalidArgument(where + ".distinct_id: required, at the top level of the event or in its properties",
                                where + ".distinct_id"),
                false);
    return;
  }
  e["distinct_id"] = std::move(did);
  auto ts = EventTime(e, where, batch_sent_at, tz, now_ms);
  if (!ts.ok()) {
    RejectEvent(out, index, ts.status(), true);
    return;
  }
  e["timestamp"] = *ts;
  if (!AddEvent(e, index, where, tz, now_ms, limits, approx_bytes, out)) return;
  // $merge_dangerously merges like $create_alias (the native mapping handles the latter).
  Event& added = out->events.back();
  if (added.event == "$merge_dangerously" && props != nullptr)
    if (const json* alias = FindMember(*props, "alias"); alias != nullptr && alias->is_string()) {
      // The same rule as every other id (length, no control characters).
      const std::string& a = alias->get_ref<const std::string&>();
      bool bad = a.empty() || Utf8Length(a) > limits.max_distinct_id_chars;
      for (unsigned char c : a) bad |= c < 0x20 || c == 0x7f;
      if (bad) {
        out->events.pop_back();
        RejectEvent(
            out, index,
            InvalidArgument(where + ".properties.alias: must be 1 to " + std::to_string(limits.max_distinct_id_chars) +
                                " characters without control characters",
                            where + ".properties.alias"),
            false);
        return;
      }
      added.merge_with.push_back(a);
    }
}

}  // namespace

StatusOr<CollectResult> ParsePostHog(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits, const KeyResolver& resolve) {
  std::string_view path = req.path;
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path != "/batch" && path != "/capture" && path != "/e" && path != "/i/v0/e" && path != "/track" &&
      path != "/engage")
    return NotFound("unknown PostHog endpoint '" + EscapeInvalidUtf8(req.path) +
                    "' (expected /batch, /capture, /e, /i/v0/e, /track or /engage)");
  const bool engage = path == "/engage";
  NS_RETURN_IF_ERROR(CheckBodySize(req.body.size(), limits));
  const std::string_view ct = req.content_type;
  if (!ct.empty() && ct != "application/json" && ct != "text/plain" && ct != "application/x-www-form-urlencoded" &&
      ct != "application/octet-stream")
    return UnsupportedMediaType("unsupported Content-Type '" + EscapeInvalidUtf8(ct) +
                                "' (expected application/json, text/plain or application/x-www-form-urlencoded)");
  // The payload: the `data` field (query string of a GET, or form body), else the body.
  std::string data_field;
  bool from_field = false;
  for (const auto& [k, v] : req.query)
    if (k == "data") {
      data_field = v;
      from_field = true;
      break;
    }
  if (!from_field && ct == "application/x-www-form-urlencoded" && !req.body.empty() && !LooksLikeJson(req.body) &&
      !LooksGzipped(req.body))
    return InvalidArgument("form body without a data= field (expected data=<base64 or JSON payload>)", "data");
  if (!from_field && req.body.empty())
    return InvalidArgument("no payload: send events in the body, or in a data= query parameter or form field", "data");
  std::string storage;
  NS_ASSIGN_OR_RETURN(std::string_view text,
                      DecodePayload(from_field ? std::string_view(data_field) : req.body, req.Query("compression"),
                                    from_field ? "data" : "body", limits, &storage));
  NS_ASSIGN_OR_RETURN(json doc, ParseJsonPayload(text, from_field ? "data" : "body"));

  CollectResult res;
  json* events = &doc;
  std::optional<int64_t> sent_at;
  bool single = false;
  if (doc.is_object()) {
    if (auto it = doc.find("batch"); it != doc.end()) {
      if (!it->is_array()) return InvalidArgument("batch: expected an array of events", "batch");
      events = &*it;
    } else {
      single = true;
    }
    if (const json* s = FindMember(doc, "sent_at"); s != nullptr && !s->is_null()) {
      auto v = TimestampFromJson(*s, "sent_at", tz);
      if (v.ok()) sent_at = *v;
    }
    res.key = KeyOf(doc);
  } else if (!doc.is_array()) {
    return InvalidArgument(
        std::string("body: expected an event object, {\"batch\":[...]} or an array of events, got ") + doc.type_name(),
        "body");
  }
  if (!sent_at) {  // posthog-js sends the send time as ?_=<epoch ms>
    const std::string u = req.Query("_");
    if (!u.empty() && u.size() <= 15 && u.find_first_not_of("0123456789") == std::string::npos) sent_at = std::stoll(u);
  }
  // Keys inside events: all must agree (PostHog refuses batches for several projects).
  if (!single) {
    for (const json& e : *events) {
      std::string k = KeyOf(e);
      if (k.empty()) continue;
      if (res.key.empty())
        res.key = k;
      else if (k != res.key)
        return Unauthenticated(
            "the batch carries more than one project API key; send each project's events "
            "separately");
    }
  }
  if (!res.key.empty()) {
    res.key_source = KeySource::kBody;
  } else {
    for (const char* q : {"api_key", "token"})
      if (std::string v = req.Query(q); !v.empty()) {
        res.key = v;
        res.key_source = KeySource::kQuery;
        break;
      }
  }
  if (res.key.empty() && !req.bearer.empty()) {
    res.key = req.bearer;
    res.key_source = KeySource::kBearer;
  }
  NS_ASSIGN_OR_RETURN(const TimeZone* zone, ResolveZone(resolve, res, tz));
  const bool approx = limits.max_event_bytes < text.size();
  if (single) {
    res.received = 1;
    AddPostHogEvent(doc, engage, 0, "event", sent_at, *zone, now_ms, limits, approx ? text.size() : 0, &res.batch);
    return res;
  }
  res.received = events->size();
  for (size_t i = 0; i < events->size(); i++) {
    json& e = (*events)[i];
    const size_t bytes = EventBytes(e, approx);
    AddPostHogEvent(e, engage, i, "batch[" + std::to_string(i) + "]", sent_at, *zone, now_ms, limits, bytes,
                    &res.batch);
  }
  return res;
}

}  // namespace ns
