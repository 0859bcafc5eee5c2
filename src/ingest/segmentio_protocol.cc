#include "ingest/segmentio_protocol.h"

#include <optional>

#include "ingest/gzip.h"
#include "ingest/ondemand_json.h"

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
// the sub-object of context (empty: a direct member of context). Views, not C strings: the
// fast path compares every context key against them (strlen was ~4 % of its time).
struct ContextField {
  std::string_view object;
  std::string_view field;
  std::string_view property;
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
    {"", "ip", "$ip"},
    {"", "locale", "$locale"},
    {"", "timezone", "$timezone"},
    {"", "userAgent", "$user_agent"},
};

// Copies the context fields of `context` into props (an object) where props has no such key.
void CopyContext(const json& context, json& props) {
  for (const ContextField& f : kContextFields) {
    const json* v = f.object.empty() ? &context : FindMember(context, f.object);
    if (v == nullptr) continue;
    v = FindMember(*v, f.field);
    if (v == nullptr || v->is_null() || v->is_object() || v->is_array()) continue;
    if (!props.contains(f.property)) props[std::string(f.property)] = *v;
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

// The checks before the body is parsed: the call type from the path, the body's size,
// gzip and content type. Sets *call and *body (inflated into *inflated if gzip).
Status SegmentPrelude(const CollectRequest& req, const IngestLimits& limits, std::optional<Call>* call_out,
                      std::string* inflated, std::string_view* body_out) {
  std::string_view path = req.path;
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::optional<Call> call;
  if (path.substr(0, 4) == "/v1/") call = CallFromName(path.substr(4));
  if (!call)
    return NotFound("unknown Segment endpoint '" + EscapeInvalidUtf8(req.path) +
                    "' (expected /v1/track, /v1/identify, /v1/page, /v1/screen, /v1/group, /v1/alias, /v1/batch or "
                    "/v1/import)");
  NS_RETURN_IF_ERROR(CheckBodySize(req.body.size(), limits));
  NS_ASSIGN_OR_RETURN(std::string_view body, MaybeGunzip(req.body, limits.max_body_bytes, inflated));
  NS_RETURN_IF_ERROR(CheckJsonContentType(req.content_type, body));
  *call_out = call;
  *body_out = body;
  return Status::OK();
}

// The body through nlohmann::json (after SegmentPrelude).
StatusOr<CollectResult> SegmentBodyDom(const CollectRequest& req, std::optional<Call> call, std::string_view body,
                                       const TimeZone& tz, int64_t now_ms, const IngestLimits& limits,
                                       const KeyResolver& resolve) {
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

// --- The fast path: simdjson On-Demand straight into events (ingest/ondemand_json.h) ---

namespace od = ondemand_json::od;

// A time value as read; TimestampFromJson's conversion once the zone is known.
struct TimeField {
  enum Kind { kAbsent, kInt, kDouble, kText } kind = kAbsent;  // absent or null: kAbsent
  int64_t i = 0;
  double d = 0;
  std::string_view text;
};

// False for what the fast path leaves to the DOM path (a type TimestampFromJson rejects, an
// integer beyond int64).
bool ReadTimeField(od::value v, TimeField* out) {
  od::json_type t;
  if (v.type().get(t)) return false;
  if (t == od::json_type::null) {
    bool is_null = false;
    out->kind = TimeField::kAbsent;
    return !v.is_null().get(is_null) && is_null;
  }
  if (t == od::json_type::string) {
    out->kind = TimeField::kText;
    return !v.get_string().get(out->text);
  }
  ondemand_json::Number n;
  if (t != od::json_type::number || !ondemand_json::ReadNumber(v, &n)) return false;
  switch (n.type) {
    case od::number_type::signed_integer: out->kind = TimeField::kInt, out->i = n.i; return true;
    case od::number_type::unsigned_integer: return false;
    default: out->kind = TimeField::kDouble, out->d = n.d; return true;
  }
}

// TimestampFromJson of a present value; false where it returns an error.
bool TimeOf(const TimeField& f, const TimeZone& tz, int64_t* ms) {
  switch (f.kind) {
    case TimeField::kInt: *ms = f.i; return true;
    case TimeField::kDouble:
      if (!(f.d > -9.2e18 && f.d < 9.2e18)) return false;
      *ms = static_cast<int64_t>(f.d);
      return true;
    case TimeField::kText: {
      auto t = ParseIsoTimestamp(f.text, tz);
      if (!t.ok()) return false;
      *ms = *t;
      return true;
    }
    case TimeField::kAbsent: break;
  }
  return false;
}

// IdFromJson: absent, null -> "", a string, an integer's decimal text; false otherwise.
bool ReadId(od::value v, std::string* out) {
  od::json_type t;
  if (v.type().get(t)) return false;
  if (t == od::json_type::null) {
    bool is_null = false;
    out->clear();
    return !v.is_null().get(is_null) && is_null;
  }
  if (t == od::json_type::string) {
    std::string_view s;
    if (v.get_string().get(s)) return false;
    out->assign(s);
    return true;
  }
  ondemand_json::Number n;
  if (t != od::json_type::number || !ondemand_json::ReadNumber(v, &n)) return false;
  switch (n.type) {
    case od::number_type::signed_integer: *out = std::to_string(n.i); return true;
    case od::number_type::unsigned_integer: *out = std::to_string(n.u); return true;
    default: return false;
  }
}

// What CopyContext and the traits merge read from one context object.
struct ContextData {
  // The context fields present with a scalar value other than null, by index in
  // kContextFields, each index at most once. A list of the few present: a slot per field
  // (27) was set up, reset and destroyed for every message (~8 % of the fast path).
  std::vector<std::pair<uint8_t, PropValue>> fields;
  std::vector<Property> traits;  // sorted, keys unique; empty unless traits is an object

  void Reset(size_t i) {
    for (size_t k = 0; k < fields.size(); k++)
      if (fields[k].first == i) {
        fields.erase(fields.begin() + static_cast<ptrdiff_t>(k));
        return;
      }
  }
  void Set(size_t i, PropValue v) {
    for (auto& [index, value] : fields)
      if (index == i) {
        value = std::move(v);
        return;
      }
    fields.emplace_back(static_cast<uint8_t>(i), std::move(v));
  }
};
static_assert(std::size(kContextFields) < 256);

// Context field i's value: scalars other than null count; null, objects, arrays do not.
bool ReadContextScalar(od::value v, size_t i, ContextData* c) {
  od::json_type t;
  if (v.type().get(t)) return false;
  if (t == od::json_type::null || t == od::json_type::object || t == od::json_type::array) {
    c->Reset(i);
    return ondemand_json::Validate(v);
  }
  PropValue p;
  if (!ondemand_json::ToPropValue(v, &p)) return false;
  c->Set(i, std::move(p));
  return true;
}

// Reads a context object, last repeated key winning as in nlohmann::json.
bool ReadContext(od::object obj, ContextData* c) {
  c->fields.clear();
  c->traits.clear();
  for (auto member : obj) {
    od::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return false;
    od::value val = field.value();
    // A sub-object of context (library, os, ...): its fields of an earlier copy are gone.
    bool group = false;
    for (size_t i = 0; i < std::size(kContextFields); i++)
      if (!kContextFields[i].object.empty() && key == kContextFields[i].object) {
        group = true;
        c->Reset(i);
      }
    if (group) {
      od::json_type t;
      if (val.type().get(t)) return false;
      if (t != od::json_type::object) {
        if (!ondemand_json::Validate(val)) return false;
        continue;
      }
      od::object sub;
      if (val.get_object().get(sub)) return false;
      for (auto sub_member : sub) {
        od::field sub_field;
        std::string_view sub_key;
        if (std::move(sub_member).get(sub_field) || sub_field.unescaped_key().get(sub_key)) return false;
        size_t i = 0;
        while (i < std::size(kContextFields) &&
               !(key == kContextFields[i].object && sub_key == kContextFields[i].field))
          i++;
        if (i < std::size(kContextFields) ? !ReadContextScalar(sub_field.value(), i, c)
                                          : !ondemand_json::Validate(sub_field.value()))
          return false;
      }
      continue;
    }
    size_t i = 0;
    while (i < std::size(kContextFields) && !(kContextFields[i].object.empty() && key == kContextFields[i].field)) i++;
    if (i < std::size(kContextFields)) {
      if (!ReadContextScalar(val, i, c)) return false;
    } else if (key == "traits") {
      od::json_type t;
      if (val.type().get(t)) return false;
      c->traits.clear();
      if (t == od::json_type::object ? !ondemand_json::ReadObjectProps(val, &c->traits) : !ondemand_json::Validate(val))
        return false;
    } else if (!ondemand_json::Validate(val)) {
      return false;
    }
  }
  return true;
}

// The last context object read from a batch's messages, by its text: the messages of a batch
// usually carry the same context byte for byte (one SDK on one device), and reading it was
// ~16 % of the Segment fast path. What ReadContext makes of an object depends on its text
// only, so an equal text gets the same ContextData without being read again.
struct ContextCache {
  std::string text;
  ContextData data;
  bool filled = false;
};

// A message's fields as read (last repeated key wins), before the mapping.
struct MessageFields {
  bool has_type = false;
  std::string_view type;
  std::string user, anon, group, previous;
  bool has_event = false;
  std::string_view event;
  TimeField original, timestamp, sent_at;
  bool has_message_id = false;
  std::string_view message_id;
  std::vector<Property> props;           // sorted, keys unique
  const ContextData* context = nullptr;  // in the ContextCache; null if none or not an object
  bool has_traits = false;               // traits is an object
  std::string traits_json;               // its nlohmann dump ($group_set)
  std::vector<Property> traits;
  std::optional<PropValue> name, category;
};

// The keys of a message ReadMessage reads, told apart by length first (a chain of string
// compares was a visible part of the Segment fast path).
enum class MessageKey {
  kType,
  kEvent,
  kUserId,
  kAnonymousId,
  kGroupId,
  kPreviousId,
  kOriginalTimestamp,
  kTimestamp,
  kSentAt,
  kMessageId,
  kProperties,
  kContext,
  kTraits,
  kName,
  kCategory,
  kOther
};
MessageKey MessageKeyOf(std::string_view k) {
  using K = MessageKey;
  switch (k.size()) {
    case 4: return k == "type" ? K::kType : k == "name" ? K::kName : K::kOther;
    case 5: return k == "event" ? K::kEvent : K::kOther;
    case 6: return k == "userId" ? K::kUserId : k == "sentAt" ? K::kSentAt : k == "traits" ? K::kTraits : K::kOther;
    case 7: return k == "context" ? K::kContext : k == "groupId" ? K::kGroupId : K::kOther;
    case 8: return k == "category" ? K::kCategory : K::kOther;
    case 9: return k == "messageId" ? K::kMessageId : k == "timestamp" ? K::kTimestamp : K::kOther;
    case 10: return k == "properties" ? K::kProperties : k == "previousId" ? K::kPreviousId : K::kOther;
    case 11: return k == "anonymousId" ? K::kAnonymousId : K::kOther;
    case 17: return k == "originalTimestamp" ? K::kOriginalTimestamp : K::kOther;
    default: return K::kOther;
  }
}

// Reads message `v`; false (give up) on anything the fast path leaves to the DOM path, even
// where the DOM path would ignore it: a field of an unexpected type. Its context is read
// into `contexts` unless it is the cached one.
bool ReadMessage(od::value v, MessageFields* m, ContextCache* contexts) {
  od::object obj;
  if (v.get_object().get(obj)) return false;
  for (auto member : obj) {
    od::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return false;
    od::value val = field.value();
    od::json_type t;
    if (val.type().get(t)) return false;
    const bool is_null = t == od::json_type::null;
    const MessageKey mk = MessageKeyOf(key);
    if (mk == MessageKey::kType) {
      if (val.get_string().get(m->type)) return false;
      m->has_type = true;
    } else if (mk == MessageKey::kEvent) {
      if (val.get_string().get(m->event)) return false;
      m->has_event = true;
    } else if (mk == MessageKey::kUserId || mk == MessageKey::kAnonymousId || mk == MessageKey::kGroupId ||
               mk == MessageKey::kPreviousId) {
      std::string* id = mk == MessageKey::kUserId        ? &m->user
                        : mk == MessageKey::kAnonymousId ? &m->anon
                        : mk == MessageKey::kGroupId     ? &m->group
                                                         : &m->previous;
      if (!ReadId(val, id)) return false;
    } else if (mk == MessageKey::kOriginalTimestamp || mk == MessageKey::kTimestamp || mk == MessageKey::kSentAt) {
      TimeField* f = mk == MessageKey::kOriginalTimestamp ? &m->original
                     : mk == MessageKey::kTimestamp       ? &m->timestamp
                                                          : &m->sent_at;
      if (!ReadTimeField(val, f)) return false;
    } else if (mk == MessageKey::kMessageId) {
      m->has_message_id = !is_null;
      if (is_null ? !ondemand_json::Validate(val) : val.get_string().get(m->message_id) != simdjson::SUCCESS)
        return false;
    } else if (mk == MessageKey::kProperties) {
      if (is_null) {
        m->props.clear();
        if (!ondemand_json::Validate(val)) return false;
        continue;
      }
      // Room for a few properties plus what MapMessage adds (a context's and the call's),
      // so that the vector is allocated once.
      m->props.reserve(8);
      if (!ondemand_json::ReadObjectProps(val, &m->props)) {
        return false;
      }
    } else if (mk == MessageKey::kContext) {
      m->context = nullptr;
      if (t != od::json_type::object) {
        if (!ondemand_json::Validate(val)) return false;
        continue;
      }
      od::object o;
      std::string_view text;
      if (val.get_object().get(o) || o.raw_json().get(text)) return false;  // skips it (structure only)
      if (!contexts->filled || text != contexts->text) {
        contexts->filled = false;
        bool any;
        if (o.reset().get(any) || !ReadContext(o, &contexts->data)) return false;  // read it after all
        contexts->text.assign(text);
        contexts->filled = true;
      }
      m->context = &contexts->data;
    } else if (mk == MessageKey::kTraits) {
      m->has_traits = !is_null;
      m->traits.clear();
      if (is_null) {
        if (!ondemand_json::Validate(val)) return false;
        continue;
      }
      // Traits keep nlohmann's dump for $group_set: read them with nlohmann (identify and
      // group calls only).
      od::object o;
      std::string_view raw;
      if (val.get_object().get(o) || o.raw_json().get(raw) || !JsonNestingAtMost(raw, ondemand_json::kMaxValueDepth))
        return false;
      try {
        const json traits = json::parse(raw);
        m->traits_json = traits.dump();
        for (auto it = traits.begin(); it != traits.end(); ++it)
          m->traits.push_back(Property{it.key(), PropValueFromJson(it.value())});
      } catch (const json::exception&) {
        return false;
      }
    } else if (mk == MessageKey::kName || mk == MessageKey::kCategory) {
      std::optional<PropValue>& slot = mk == MessageKey::kName ? m->name : m->category;
      if (is_null) {
        slot.reset();
        if (!ondemand_json::Validate(val)) return false;
      } else {
        PropValue p;
        if (!ondemand_json::ToPropValue(val, &p)) return false;
        slot = std::move(p);
      }
    } else if (!ondemand_json::Validate(val)) {
      return false;
    }
  }
  return true;
}

// AddMessage's mapping of a read message; false (give up) where AddMessage would record an
// error.
bool MapMessage(MessageFields&& m, std::optional<Call> call, const ContextData* env_context,
                const std::optional<int64_t>& env_sent_at, const TimeZone& tz, int64_t now_ms,
                const IngestLimits& limits, Event* out) {
  if (!call) {
    if (!m.has_type || !(call = CallFromName(m.type)) || *call == Call::kBatch) return false;
  }
  if (m.user.empty() && m.anon.empty()) return false;
  FastEventFields f;
  // The anonymous id goes into the properties when both ids are given and differ; the
  // distinct id is moved out of the message after that test.
  const bool keep_anon = !m.anon.empty() && !m.user.empty() && m.anon != m.user;
  f.distinct_id = std::move(m.user.empty() ? m.anon : m.user);
  // MessageTime
  const TimeField& client = m.original.kind != TimeField::kAbsent ? m.original : m.timestamp;
  if (client.kind == TimeField::kAbsent) {
    f.ts_ms = now_ms;
  } else {
    int64_t t;
    if (!TimeOf(client, tz, &t)) return false;
    std::optional<int64_t> sent = env_sent_at;
    if (m.sent_at.kind != TimeField::kAbsent) {
      int64_t s;
      if (!TimeOf(m.sent_at, tz, &s)) return false;
      sent = s;
    }
    if (sent) {
      int64_t skew;
      if (__builtin_sub_overflow(now_ms, *sent, &skew) || __builtin_add_overflow(t, skew, &t)) return false;
    }
    f.ts_ms = t;
  }
  f.has_uuid = m.has_message_id;
  f.uuid = m.message_id;

  // One allocation for the properties and what the contexts and the call add (a vector
  // growing by doubling reallocated once or twice per message).
  m.props.reserve(m.props.size() + (m.context ? m.context->fields.size() : 0) +
                  (env_context ? env_context->fields.size() : 0) + 3);
  ondemand_json::PropMap props(std::move(m.props));
  ondemand_json::PropMap set({});
  for (const ContextData* ctx : {m.context, env_context}) {
    if (ctx == nullptr) continue;
    for (const auto& [i, value] : ctx->fields) props.SetIfAbsent(kContextFields[i].property, value);
    for (const Property& p : ctx->traits) set.SetIfAbsent(p.key, p.value);
  }
  if (keep_anon) props.SetIfAbsent("$anon_distinct_id", PropValue::Str(std::move(m.anon)));
  switch (*call) {
    case Call::kTrack:
      if (!m.has_event) return false;
      f.event.assign(m.event);
      break;
    case Call::kIdentify:
      f.event = "$identify";
      for (Property& p : m.traits) set.Set(p.key, std::move(p.value));
      break;
    case Call::kPage:
    case Call::kScreen:
      f.event = *call == Call::kPage ? "$pageview" : "$screen";
      if (m.name) props.SetIfAbsent("name", std::move(*m.name));
      if (m.category) props.SetIfAbsent("category", std::move(*m.category));
      break;
    case Call::kGroup:
      if (m.group.empty()) return false;
      f.event = "$groupidentify";
      props.Set("$group_id", PropValue::Str(m.group));
      if (m.has_traits) props.Set("$group_set", PropValue::Json(std::move(m.traits_json)));
      break;
    case Call::kAlias:
      if (m.previous.empty()) return false;
      f.event = "$create_alias";
      props.Set("alias", PropValue::Str(m.previous));
      break;
    case Call::kBatch: return false;
  }
  f.props = std::move(props).Finish();
  f.set = std::move(set).Finish();
  return FinishFastEvent(std::move(f), now_ms, limits, out);
}

// The fields of a {"batch":[...]} envelope (or, for a single call, only writeKey).
struct EnvelopeFields {
  bool has_key = false;
  std::string_view write_key;
  TimeField sent_at;
  bool has_context = false;
  ContextData context;
  int batches = 0;
};

// A resolver that asks `real` once per key and remembers the answer, so that the DOM path
// run after the fast path gave up does not authenticate the same request twice.
class OnceResolver {
 public:
  explicit OnceResolver(const KeyResolver& real) : real_(real) {}
  KeyResolver Get() {
    if (!real_) return {};
    return [this](const CollectResult& found) -> StatusOr<const TimeZone*> {
      if (!cached_ || found.key != key_ || found.key_source != source_) {
        cached_ = real_(found);
        key_ = found.key;
        source_ = found.key_source;
      }
      return *cached_;
    };
  }

 private:
  const KeyResolver& real_;
  std::optional<StatusOr<const TimeZone*>> cached_;
  std::string key_;
  KeySource source_ = KeySource::kNone;
};

bool AtEnd(od::document& doc) { return doc.current_location().error() == simdjson::OUT_OF_BOUNDS; }

// The fast path of a body that passed SegmentPrelude: the result, nullopt to run the DOM
// path (also when the key resolver failed: the DOM path reports a malformed body first).
std::optional<CollectResult> SegmentBodyFast(const CollectRequest& req, Call call, std::string_view body,
                                             const TimeZone& tz, int64_t now_ms, const IngestLimits& limits,
                                             const KeyResolver& resolve) {
  if (body.size() > limits.max_event_bytes) return std::nullopt;  // the DOM path measures events
  ondemand_json::ParserLease lease(body);
  od::document doc;
  od::json_type type;
  if (lease.parser().iterate(lease.Padded()).get(doc) || doc.type().get(type) || type != od::json_type::object)
    return std::nullopt;
  CollectResult res;
  if (!req.basic_user.empty()) {
    res.key = req.basic_user;
    res.key_source = KeySource::kBasicAuth;
  } else if (!req.bearer.empty()) {
    res.key = req.bearer;
    res.key_source = KeySource::kBearer;
  }
  // First pass over the top level: writeKey and, for a batch, the envelope (sentAt and
  // context may follow the batch). Values skipped here are read by the second pass.
  EnvelopeFields env;
  const bool batch = call == Call::kBatch;
  if (batch || res.key_source == KeySource::kNone) {
    od::object obj;
    if (doc.get_object().get(obj)) return std::nullopt;
    for (auto member : obj) {
      od::field field;
      std::string_view key;
      if (std::move(member).get(field) || field.unescaped_key().get(key)) return std::nullopt;
      od::value val = field.value();
      if (key == "writeKey") {
        od::json_type t;
        if (val.type().get(t)) return std::nullopt;
        env.has_key = t == od::json_type::string;
        if (env.has_key ? val.get_string().get(env.write_key) != simdjson::SUCCESS
                        : batch && !ondemand_json::Validate(val))
          return std::nullopt;
      } else if (!batch) {
        continue;
      } else if (key == "sentAt") {
        if (!ReadTimeField(val, &env.sent_at)) return std::nullopt;
      } else if (key == "context") {
        od::json_type t;
        if (val.type().get(t)) return std::nullopt;
        env.has_context = t == od::json_type::object;
        od::object o;
        if (env.has_context ? val.get_object().get(o) || !ReadContext(o, &env.context) : !ondemand_json::Validate(val))
          return std::nullopt;
      } else if (key == "batch") {
        env.batches++;
      } else if (!ondemand_json::Validate(val)) {
        return std::nullopt;
      }
    }
    if (batch && !AtEnd(doc)) return std::nullopt;
    doc.rewind();
  }
  if (res.key_source == KeySource::kNone && env.has_key) {
    res.key.assign(env.write_key);
    res.key_source = KeySource::kBody;
  }
  auto zone = ResolveZone(resolve, res, tz);
  if (!zone.ok()) return std::nullopt;

  if (!batch) {
    od::value v;
    MessageFields m;
    ContextCache contexts;
    Event e;
    if (doc.get_value().get(v) || !ReadMessage(v, &m, &contexts) || !AtEnd(doc) ||
        !MapMessage(std::move(m), call, nullptr, std::nullopt, **zone, now_ms, limits, &e))
      return std::nullopt;
    res.received = 1;
    res.batch.events.push_back(std::move(e));
    return res;
  }
  std::optional<int64_t> sent_at;
  if (env.sent_at.kind != TimeField::kAbsent) {
    int64_t s;
    if (!TimeOf(env.sent_at, **zone, &s)) return std::nullopt;
    sent_at = s;
  }
  if (env.batches != 1) return std::nullopt;
  od::object obj;
  if (doc.get_object().get(obj)) return std::nullopt;
  for (auto member : obj) {
    od::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return std::nullopt;
    if (key != "batch") continue;  // read by the first pass
    od::array messages;
    if (field.value().get_array().get(messages)) return std::nullopt;
    // Room for the events up front: growing by doubling moved each (large) Event about
    // once more. A Segment message is rarely under 128 bytes; the guess is capped.
    res.batch.events.reserve(std::min<size_t>(body.size() / 128 + 1, 4096));
    ContextCache contexts;
    for (auto element : messages) {
      od::value v;
      MessageFields m;
      Event& e = res.batch.events.emplace_back();  // mapped in place (a failure drops res)
      if (element.get(v) || !ReadMessage(v, &m, &contexts) ||
          !MapMessage(std::move(m), std::nullopt, env.has_context ? &env.context : nullptr, sent_at, **zone, now_ms,
                      limits, &e))
        return std::nullopt;
    }
  }
  res.received = res.batch.events.size();
  return res;
}

}  // namespace

StatusOr<CollectResult> ParseSegmentIoDom(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                          const IngestLimits& limits, const KeyResolver& resolve) {
  std::optional<Call> call;
  std::string inflated;
  std::string_view body;
  NS_RETURN_IF_ERROR(SegmentPrelude(req, limits, &call, &inflated, &body));
  return SegmentBodyDom(req, call, body, tz, now_ms, limits, resolve);
}

StatusOr<CollectResult> ParseSegmentIo(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                       const IngestLimits& limits, const KeyResolver& resolve) {
  std::optional<Call> call;
  std::string inflated;
  std::string_view body;
  NS_RETURN_IF_ERROR(SegmentPrelude(req, limits, &call, &inflated, &body));
  OnceResolver once(resolve);
  const KeyResolver resolve_once = once.Get();
  if (auto fast = SegmentBodyFast(req, *call, body, tz, now_ms, limits, resolve_once)) {
    ondemand_json::ThreadFastPathCounts().taken++;
    return std::move(*fast);
  }
  ondemand_json::ThreadFastPathCounts().gave_up++;
  return SegmentBodyDom(req, call, body, tz, now_ms, limits, resolve_once);
}

}  // namespace ns
