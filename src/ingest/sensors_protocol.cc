#include "ingest/sensors_protocol.h"

#include <algorithm>

#include "ingest/gzip.h"

namespace ns {

using nlohmann::json;

namespace {

enum class RecordType {
  kTrack,
  kTrackSignup,
  kTrackIdBind,
  kProfileSet,
  kProfileSetOnce,
  kProfileIncrement,
  kProfileAppend,
  kProfileUnset,
};

struct TypeInfo {
  const char* name;
  RecordType type;
  const char* event;  // stored event name (nullptr: the record's `event`)
};
constexpr TypeInfo kTypes[] = {
    {"track", RecordType::kTrack, nullptr},
    {"track_signup", RecordType::kTrackSignup, "$SignUp"},
    {"track_id_bind", RecordType::kTrackIdBind, "$BindID"},
    {"profile_set", RecordType::kProfileSet, "$profile_set"},
    {"profile_set_once", RecordType::kProfileSetOnce, "$profile_set_once"},
    {"profile_increment", RecordType::kProfileIncrement, "$profile_increment"},
    {"profile_append", RecordType::kProfileAppend, "$profile_append"},
    {"profile_unset", RecordType::kProfileUnset, "$profile_unset"},
};

void AddMerge(Event& e, const json* v) {
  if (v == nullptr || !v->is_string()) return;
  const std::string& id = v->get_ref<const std::string&>();
  if (id.empty() || id == e.distinct_id) return;
  if (std::find(e.merge_with.begin(), e.merge_with.end(), id) == e.merge_with.end()) e.merge_with.push_back(id);
}

void AddRecord(json& r, size_t index, const std::string& where, const TimeZone& tz, int64_t now_ms,
               const IngestLimits& limits, size_t approx_bytes, ParsedBatch* out) {
  if (!r.is_object()) {
    RejectEvent(out, index, InvalidArgument(where + ": expected a record object, got " + r.type_name(), where), false);
    return;
  }
  const json* type = FindMember(r, "type");
  const TypeInfo* info = nullptr;
  if (type != nullptr && type->is_string())
    for (const TypeInfo& t : kTypes)
      if (type->get_ref<const std::string&>() == t.name) info = &t;
  if (info == nullptr) {
    RejectEvent(out, index,
                InvalidArgument(
                    where +
                        ".type: expected track, track_signup, track_id_bind, profile_set, "
                        "profile_set_once, profile_increment, profile_append or profile_unset, got " +
                        (type ? type->dump(-1, ' ', false, json::error_handler_t::replace) : std::string("nothing")),
                    where + ".type"),
                false);
    return;
  }
  auto did = IdFromJson(FindMember(r, "distinct_id"), where + ".distinct_id");
  if (!did.ok() || did->empty()) {
    RejectEvent(out, index,
                did.ok() ? InvalidArgument(where + ".distinct_id: required field is missing", where + ".distinct_id")
                         : did.status(),
                false);
    return;
  }
  json native = json::object();
  native["distinct_id"] = *did;
  std::string name;
  if (info->event != nullptr) {
    name = info->event;
    if (info->type == RecordType::kTrackSignup || info->type == RecordType::kTrackIdBind)
      if (const json* ev = FindMember(r, "event");
          ev != nullptr && ev->is_string() && !ev->get_ref<const std::string&>().empty())
        name = ev->get<std::string>();
  } else {
    const json* ev = FindMember(r, "event");
    if (ev == nullptr || !ev->is_string()) {
      RejectEvent(out, index,
                  InvalidArgument(where + ".event: a track record needs an event name (string)", where + ".event"),
                  false);
      return;
    }
    name = ev->get<std::string>();
  }
  native["event"] = name;
  const json* time = FindMember(r, "time");
  int64_t ts = now_ms;
  if (time != nullptr && !time->is_null()) {
    auto t = TimestampFromJson(*time, where + ".time", tz);
    if (!t.ok()) {
      RejectEvent(out, index, t.status(), true);
      return;
    }
    ts = *t;
  }
  native["timestamp"] = ts;
  // Sensors deduplicates by _track_id; with the time, id, type and name it identifies the
  // record across retries (the SDK draws _track_id at random per record).
  if (const json* tid = FindMember(r, "_track_id"); tid != nullptr && (tid->is_number_integer() || tid->is_string())) {
    native["uuid"] = "sa:" + tid->dump() + ":" + std::to_string(ts) + ":" + *did + ":" + info->name + ":" + name;
  }
  json props = json::object();
  if (auto p = r.find("properties"); p != r.end() && !p->is_null()) {
    if (!p->is_object()) {
      RejectEvent(
          out, index,
          InvalidArgument(where + ".properties: expected an object, got " + p->type_name(), where + ".properties"),
          false);
      return;
    }
    props = std::move(*p);
  }
  if (const json* lib = FindMember(r, "lib"); lib != nullptr && lib->is_object())
    for (auto it = lib->begin(); it != lib->end(); ++it)
      if (!props.contains(it.key()) && !it.value().is_object() && !it.value().is_array()) props[it.key()] = it.value();
  if (info->type == RecordType::kProfileSet) native["$set"] = props;
  if (info->type == RecordType::kProfileSetOnce) native["$set_once"] = props;
  const json* is_login = FindMember(props, "$is_login_id");
  const bool login =
      (is_login != nullptr && is_login->is_boolean() && is_login->get<bool>()) || FindMember(r, "login_id") != nullptr;
  native["properties"] = std::move(props);
  if (!AddEvent(native, index, where, tz, now_ms, limits, approx_bytes, out)) return;
  Event& e = out->events.back();
  if (info->type == RecordType::kTrackSignup) AddMerge(e, FindMember(r, "original_id"));
  if (login) AddMerge(e, FindMember(r, "anonymous_id"));
  AddMerge(e, FindMember(r, "login_id"));
  if (const json* ids = FindMember(r, "identities"); ids != nullptr && ids->is_object())
    for (const auto& v : *ids) AddMerge(e, &v);
}

}  // namespace

StatusOr<CollectResult> ParseSensors(const CollectRequest& req, const TimeZone& tz, int64_t now_ms,
                                     const IngestLimits& limits, const KeyResolver& resolve) {
  std::string_view path = req.path;
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path != "/sa" && path != "/sa.gif")
    return NotFound("unknown Sensors Data endpoint '" + EscapeInvalidUtf8(req.path) + "' (expected /sa)");
  NS_RETURN_IF_ERROR(CheckBodySize(req.body.size(), limits));
  const std::string_view ct = req.content_type;
  if (!ct.empty() && ct != "application/x-www-form-urlencoded" && ct != "text/plain")
    return UnsupportedMediaType("unsupported Content-Type '" + EscapeInvalidUtf8(ct) +
                                "' (expected application/x-www-form-urlencoded with data_list= or data=)");
  const char* what = "data_list";
  bool have = false;
  std::string text;
  for (const char* field : {"data_list", "data"}) {
    for (const auto& [k, v] : req.query)
      if (k == field) {
        text = v;
        have = true;
        break;
      }
    if (have) {
      what = field;
      break;
    }
  }
  if (!have)
    return InvalidArgument(
        "no data: send the records as the form field or query parameter data_list=<base64> "
        "(an array) or data=<base64> (one record)",
        "data_list");
  NS_RETURN_IF_ERROR(CheckBodySize(text.size(), limits, what));
  const bool gzip_flag = req.Query("gzip") == "1";
  std::string decoded, inflated;
  std::string_view payload = text;
  const size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos || (text[first] != '[' && text[first] != '{')) {  // base64, the SDKs' encoding
    auto d = Base64Decode(text);
    if (!d.ok()) return InvalidArgument(std::string(what) + ": " + d.status().message(), what);
    decoded = std::move(d).value();
    payload = decoded;
  }
  if (gzip_flag && !LooksGzipped(payload))
    return InvalidArgument(std::string(what) + ": gzip=1 but the decoded data is not gzip", what);
  NS_ASSIGN_OR_RETURN(payload, MaybeGunzip(payload, limits.max_body_bytes, &inflated));
  NS_ASSIGN_OR_RETURN(json doc, ParseJsonPayload(payload, what));
  if (!doc.is_array() && !doc.is_object())
    return InvalidArgument(
        std::string(what) + ": expected a JSON array of records or one record object, got " + doc.type_name(), what);

  CollectResult res;
  res.key = req.Query("token");
  if (!res.key.empty()) res.key_source = KeySource::kQuery;
  res.project_name = req.Query("project");
  NS_ASSIGN_OR_RETURN(const TimeZone* zone, ResolveZone(resolve, res, tz));
  const bool approx = limits.max_event_bytes < payload.size();
  if (doc.is_object()) {
    res.received = 1;
    AddRecord(doc, 0, what, *zone, now_ms, limits, approx ? payload.size() : 0, &res.batch);
    return res;
  }
  res.received = doc.size();
  for (size_t i = 0; i < doc.size(); i++) {
    json& r = doc[i];
    const size_t bytes = EventBytes(r, approx);
    AddRecord(r, i, std::string(what) + "[" + std::to_string(i) + "]", *zone, now_ms, limits, bytes, &res.batch);
  }
  return res;
}

}  // namespace ns
