#include "ingest/segmentio_protocol.h"

#include <optional>

#include "ingest/gzip.h"

namespace ns {

using nlohmann::json;

namespace {

enum class Call { kTrack, kIdentify, kPage, kScreen, kGroup, kAlias, kBatch };

std::optional<Call> CallFromName(std::string_view n) {
  if (n == "track") return Call::kTrack;
  if (n == "identify") return Call::kIdentify;
  if (n == "page") return Call::kPage;
  if (n == "screen") return Call::kScreen;
  if (n == "group") return Call::kGroup;
  if (n == "alias") return Call::kAlias;
  if (n == "batch" || n == "import") return Call::kBatch;
  return std::nullopt;
}

// Segment context fields copied into event properties (docs/collection.md). `object` is
// the sub-object of context (nullptr: a direct member of context).
struct ContextField {
  const char* object;
  const char* field;
  const char* property;
};
constexpr ContextField kContextFields[] = {
    {"library", "name", "$lib"},
    {"library", "version", "$lib_version"},
    {"os", "name", "$os"},
    {"os", "version", "$os_version"},
    {"device", "id", "$device_id"},
    {"device", "manufacturer", "$device_manufacturer"},
    {"device", "model", "$device_model"},
    {"device", "type", "$device_type"},
    {"device", "name", "$device_name"},
    {"app", "name", "$app_name"},
    {"app", "version", "$app_version"},
    {"app", "build", "$app_build"},
    {"page", "url", "$current_url"},
    {"page", "path", "$pathname"},
    {"page", "referrer", "$referrer"},
    {"page", "title", "$title"},
    {"screen", "width", "$screen_width"},
    {"screen", "height", "$screen_height"},
    {"campaign", "name", "utm_campaign"},
    {"campaign", "source", "utm_source"},
    {"campaign", "medium", "utm_medium"},
    {"campaign", "term", "utm_term"},
    {"campaign", "content", "utm_content"},
    {nullptr, "ip", "$ip"},
    {nullptr, "locale", "$locale"},
    {nullptr, "timezone", "$timezone"},
    {nullptr, "userAgent", "$user_agent"},
};

// Copies the context fields of `context` into props (an object) where props has no such key.
void CopyContext(const json& context, json& props) {
  for (const ContextField& f : kContextFields) {
    const json* v = f.object ? FindMember(context, f.object) : &context;
    if (v == nullptr) continue;
    v = FindMember(*v, f.field);
    if (v == nullptr || v->is_null() || v->is_object() || v->is_array()) continue;
    if (!props.contains(f.property)) props[f.property] = *v;
  }
}

struct Envelope {
  const json* context = nullptr;   // batch-level context, merged under each message's
  std::optional<int64_t> sent_at;  // batch-level sentAt
};

// The event time of message m: receivedAt - (sentAt - originalTimestamp), where
// originalTimestamp is m.originalTimestamp or else m.timestamp (what server libraries send),
// and sentAt is m.sentAt or else the batch's. Without sentAt the client time is taken as is;
// without any client time, the receive time.
StatusOr<int64_t> MessageTime(const json& m, const std::string& where, const Envelope& env, const TimeZone& tz,
                              int64_t now_ms) {
  std::optional<int64_t> t;
  for (const char* key : {"originalTimestamp", "timestamp"}) {
    const json* v = FindMember(m, key);
    if (v == nullptr || v->is_null()) continue;
    NS_ASSIGN_OR_RETURN(t, TimestampFromJson(*v, where + "." + key, tz));
    break;
  }
  if (!t) return now_ms;
  std::optional<int64_t> sent = env.sent_at;
  if (const json* v = FindMember(m, "sentAt"); v != nullptr && !v->is_null()) {
    NS_ASSIGN_OR_RETURN(sent, TimestampFromJson(*v, where + ".sentAt", tz));
  }
  if (!sent) return *t;
  return CorrectClockSkew(*t, *sent, now_ms, where + ".timestamp");
}

// Maps one Segment message (moved from) to a native event and adds it (or its error) to out.
void AddMessage(json& m, std::optional<Call> call, size_t index, const std::string& where, const Envelope& env,
                const TimeZone& tz, int64_t now_ms, const IngestLimits& limits, size_t approx_bytes, ParsedBatch* out) {
  if (!m.is_object()) {
    RejectEvent(out, index, InvalidArgument(where + ": expected a message object, got " + m.type_name(), where), false);
    return;
  }
  if (!call) {  // inside a batch: the message names its type
    const json* type = FindMember(m, "type");
    if (type == nullptr || !type->is_string() || !(call = CallFromName(type->get_ref<const std::string&>())) ||
        *call == Call::kBatch) {
      RejectEvent(
          out, index,
          InvalidArgument(where + ".type: expected one of track, identify, page, screen, group, alias, got " +
                              (type ? EscapeInvalidUtf8(type->dump(-1, ' ', false, json::error_handler_t::replace))
                                    : std::string("nothing")),
                          where + ".type"),
          false);
      return;
    }
  }
  auto user = IdFromJson(FindMember(m, "userId"), where + ".userId");
  auto anon = IdFromJson(FindMember(m, "anonymousId"), where + ".anonymousId");
  if (!user.ok() || !anon.ok()) {
    RejectEvent(out, index, user.ok() ? anon.status() : user.status(), false);
    return;
  }
  if (user->empty() && anon->empty()) {
    RejectEvent(out, index, InvalidArgument(where + ": userId or anonymousId is required", where + ".userId"), false);
    return;
  }
  json native = json::object();
  native["distinct_id"] = user->empty() ? *anon : *user;
  auto time = MessageTime(m, where, env, tz, now_ms);
  if (!time.ok()) {
    RejectEvent(out, index, time.status(), true);
    return;
  }
  native["timestamp"] = *time;
  if (const json* id = FindMember(m, "messageId"); id != nullptr && !id->is_null()) native["uuid"] = *id;

  json props = json::object();
  if (json* p = m.contains("properties") ? &m["properties"] : nullptr; p != nullptr && !p->is_null()) {
    if (!p->is_object()) {
      RejectEvent(
          out, index,
          InvalidArgument(where + ".properties: expected an object, got " + p->type_name(), where + ".properties"),
          false);
      return;
    }
    props = std::move(*p);
  }
  json set = json::object();
  for (const json* ctx : {FindMember(m, "context"), env.context}) {
    if (ctx == nullptr || !ctx->is_object()) continue;
    CopyContext(*ctx, props);
    if (const json* traits = FindMember(*ctx, "traits"); traits != nullptr && traits->is_object())
      for (auto it = traits->begin(); it != traits->end(); ++it)
        if (!set.contains(it.key())) set[it.key()] = it.value();
  }
  if (!anon->empty() && !user->empty() && *anon != *user && !props.contains("$anon_distinct_id"))
    props["$anon_distinct_id"] = *anon;  // the native mapping merges the two ids

  const json* traits = FindMember(m, "traits");
  if (traits != nullptr && !traits->is_null() && !traits->is_object()) {
    RejectEvent(out, index,
                InvalidArgument(where + ".traits: expected an object, got " + traits->type_name(), where + ".traits"),
                false);
    return;
  }
  switch (*call) {
    case Call::kTrack: {
      const json* ev = FindMember(m, "event");
      if (ev == nullptr || !ev->is_string()) {
        RejectEvent(out, index,
                    InvalidArgument(where + ".event: a track call needs an event name (string), got " +
                                        (ev ? std::string(ev->type_name()) : std::string("nothing")),
                                    where + ".event"),
                    false);
        return;
      }
      native["event"] = *ev;
      break;
    }
    case Call::kIdentify:
      native["event"] = "$identify";
      if (traits != nullptr && traits->is_object())
        for (auto it = traits->begin(); it != traits->end(); ++it) set[it.key()] = it.value();
      break;
    case Call::kPage:
    case Call::kScreen: {
      native["event"] = *call == Call::kPage ? "$pageview" : "$screen";
      for (const char* key : {"name", "category"})
        if (const json* v = FindMember(m, key); v != nullptr && !v->is_null() && !props.contains(key)) props[key] = *v;
      break;
    }
    case Call::kGroup: {
      auto group = IdFromJson(FindMember(m, "groupId"), where + ".groupId");
      if (!group.ok() || group->empty()) {
        RejectEvent(out, index,
                    group.ok() ? InvalidArgument(where + ".groupId: a group call needs a groupId", where + ".groupId")
                               : group.status(),
                    false);
        return;
      }
      native["event"] = "$groupidentify";
      props["$group_id"] = *group;
      if (traits != nullptr && traits->is_object()) props["$group_set"] = *traits;
      break;
    }
    case Call::kAlias: {
      auto previous = IdFromJson(FindMember(m, "previousId"), where + ".previousId");
      if (!previous.ok() || previous->empty()) {
        RejectEvent(out, index,
                    previous.ok() ? InvalidArgument(where + ".previousId: an alias call needs a previousId",
                                                    where + ".previousId")
                                  : previous.status(),
                    false);
        return;
      }
      native["event"] = "$create_alias";  // the native mapping merges `alias` into distinct_id
      props["alias"] = *previous;
      break;
    }
    case Call::kBatch: break;  // excluded above
  }
  native["properties"] = std::move(props);
  if (!set.empty()) native["$set"] = std::move(set);
  AddEvent(native, index, where, tz, now_ms, limits, approx_bytes, out);
}

}  // namespace

StatusOr<CollectResult> ParseSegmentIo(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                       const IngestLimits& limits, const KeyResolver& resolve) {
  std::string_view path = req.path;
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::optional<Call> call;
  if (path.substr(0, 4) == "/v1/") call = CallFromName(path.substr(4));
  if (!call)
    return NotFound("unknown Segment endpoint '" + EscapeInvalidUtf8(req.path) +
                    "' (expected /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch or "
                    "/v1/import)");
  NS_RETURN_IF_ERROR(CheckBodySize(req.body.size(), limits));
  std::string inflated;
  NS_ASSIGN_OR_RETURN(std::string_view body, MaybeGunzip(req.body, limits.max_body_bytes, &inflated));
  NS_RETURN_IF_ERROR(CheckJsonContentType(req.content_type, body));
  NS_ASSIGN_OR_RETURN(json doc, ParseJsonPayload(body, "body"));
  if (!doc.is_object())
    return InvalidArgument(
        std::string("body: expected a JSON object (a Segment message, or {\"batch\":[...]}), got ") + doc.type_name(),
        "body");

  CollectResult res;
  if (!req.basic_user.empty()) {
    res.key = req.basic_user;
    res.key_source = KeySource::kBasicAuth;
  } else if (!req.bearer.empty()) {
    res.key = req.bearer;
    res.key_source = KeySource::kBearer;
  } else if (const json* k = FindMember(doc, "writeKey"); k != nullptr && k->is_string()) {
    res.key = k->get<std::string>();
    res.key_source = KeySource::kBody;
  }
  NS_ASSIGN_OR_RETURN(const TimeZone* zone, ResolveZone(resolve, res, tz));

  const bool approx = limits.max_event_bytes < body.size();
  if (*call != Call::kBatch) {
    res.received = 1;
    AddMessage(doc, call, 0, "body", Envelope{}, *zone, now_ms, limits, approx ? body.size() : 0, &res.batch);
    return res;
  }
  Envelope env;
  if (const json* v = FindMember(doc, "sentAt"); v != nullptr && !v->is_null()) {
    NS_ASSIGN_OR_RETURN(env.sent_at, TimestampFromJson(*v, "sentAt", *zone));
  }
  if (const json* c = FindMember(doc, "context"); c != nullptr && c->is_object()) env.context = c;
  auto it = doc.find("batch");
  if (it == doc.end() || !it->is_array()) return InvalidArgument("batch: expected an array of messages", "batch");
  res.received = it->size();
  for (size_t i = 0; i < it->size(); i++) {
    json& m = (*it)[i];
    const size_t bytes = EventBytes(m, approx);
    AddMessage(m, std::nullopt, i, "batch[" + std::to_string(i) + "]", env, *zone, now_ms, limits, bytes, &res.batch);
  }
  return res;
}

}  // namespace ns
