#include "automation/journey_doc.h"

#include <cmath>

#include "core/time_zone.h"
#include "ops/notify.h"
#include "ops/ops_service.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxSteps = 50;
constexpr size_t kMaxText = 4000;
constexpr int64_t kMaxWaitMs = int64_t{365} * 86'400'000;

Status Bad(const std::string& field, const std::string& msg) { return InvalidArgument(field + ": " + msg, field); }

StatusOr<std::string> Str(const json& o, const char* key, const std::string& field, bool required, size_t max = 200) {
  if (!o.contains(key) || o[key].is_null()) {
    if (required) return Bad(field, "required");
    return std::string();
  }
  if (!o[key].is_string()) return Bad(field, "expected a string");
  std::string s = o[key].get<std::string>();
  if (required && s.empty()) return Bad(field, "must not be empty");
  if (s.size() > max) return Bad(field, "longer than " + std::to_string(max) + " bytes");
  return s;
}

StatusOr<int64_t> Int(const json& o, const char* key, const std::string& field, int64_t lo, int64_t hi, int64_t dflt) {
  if (!o.contains(key) || o[key].is_null()) return dflt;
  if (!o[key].is_number_integer()) return Bad(field, "expected an integer");
  int64_t v = o[key].get<int64_t>();
  if (v < lo || v > hi) return Bad(field, "expected " + std::to_string(lo) + " to " + std::to_string(hi));
  return v;
}

Status OnlyKeys(const json& o, const std::string& field, std::initializer_list<const char*> keys) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool known = false;
    for (const char* k : keys) known = known || it.key() == k;
    if (!known) {
      std::string list;
      for (const char* k : keys) list += std::string(list.empty() ? "" : ", ") + k;
      std::string f = field.empty() ? it.key() : field + "." + it.key();
      return Bad(f, "unknown field (known: " + list + ")");
    }
  }
  return Status::OK();
}

StatusOr<JourneyStep> ParseStep(const json& s, const std::string& f) {
  if (!s.is_object()) return Bad(f, "expected an object");
  JourneyStep st;
  NS_ASSIGN_OR_RETURN(st.type, Str(s, "type", f + ".type", true));
  if (st.type == "wait") {
    NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "hours", "minutes", "seconds"}));
    int given = 0;
    for (auto [key, unit] : {std::pair{"hours", 3'600'000}, {"minutes", 60'000}, {"seconds", 1000}}) {
      if (!s.contains(key)) continue;
      given++;
      if (!s[key].is_number() || !std::isfinite(s[key].get<double>()) || s[key].get<double>() < 0)
        return Bad(f + "." + key, "expected a number >= 0");
      st.wait_ms = static_cast<int64_t>(std::llround(s[key].get<double>() * unit));
    }
    if (given != 1) return Bad(f, "a wait takes exactly one of hours, minutes, seconds");
    if (st.wait_ms > kMaxWaitMs) return Bad(f, "a wait is at most 365 days");
  } else if (st.type == "condition") {
    NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "event", "performed"}));
    NS_ASSIGN_OR_RETURN(st.event, Str(s, "event", f + ".event", true));
    if (!s.contains("performed") || !s["performed"].is_boolean())
      return Bad(f + ".performed", "expected true (did it since entering) or false (did not)");
    st.performed = s["performed"].get<bool>();
  } else if (st.type == "action") {
    NS_ASSIGN_OR_RETURN(st.action, Str(s, "action", f + ".action", true));
    if (st.action == "webhook") {
      NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "action", "url", "secret", "title", "text", "payload", "secret_set"}));
      NS_ASSIGN_OR_RETURN(st.url, Str(s, "url", f + ".url", true, 2048));
      NS_ASSIGN_OR_RETURN(st.secret, Str(s, "secret", f + ".secret", false, 512));
      NS_ASSIGN_OR_RETURN(st.title, Str(s, "title", f + ".title", false, kMaxText));
      NS_ASSIGN_OR_RETURN(st.text, Str(s, "text", f + ".text", false, kMaxText));
      if (s.contains("payload") && !s["payload"].is_null()) {
        if (!s["payload"].is_object()) return Bad(f + ".payload", "expected a JSON object");
        if (s["payload"].dump().size() > 16'384) return Bad(f + ".payload", "larger than 16 KiB");
        st.payload = s["payload"];
      }
      NotificationChannel ch{0, "journey", "webhook", st.url, st.secret};
      if (Status v = ValidateChannel(ch); !v.ok()) return Bad(f + "." + v.field(), v.message());
    } else if (st.action == "notify_owner") {
      NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "action", "channels", "title", "text"}));
      NS_ASSIGN_OR_RETURN(st.title, Str(s, "title", f + ".title", true, kMaxText));
      NS_ASSIGN_OR_RETURN(st.text, Str(s, "text", f + ".text", false, kMaxText));
      if (s.contains("channels")) {
        if (!s["channels"].is_array()) return Bad(f + ".channels", "expected an array of channel ids");
        for (size_t i = 0; i < s["channels"].size(); i++) {
          if (!s["channels"][i].is_number_integer())
            return Bad(f + ".channels[" + std::to_string(i) + "]", "expected a channel id");
          st.channels.push_back(s["channels"][i].get<int64_t>());
        }
      }
    } else if (st.action == "set_property") {
      NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "action", "property", "value"}));
      NS_ASSIGN_OR_RETURN(st.property, Str(s, "property", f + ".property", true));
      if (st.property[0] == '$') return Bad(f + ".property", "properties starting with $ are reserved");
      if (!s.contains("value") || !(s["value"].is_string() || s["value"].is_number() || s["value"].is_boolean()))
        return Bad(f + ".value", "expected a string, number or boolean");
      st.value = s["value"];
    } else if (st.action == "add_to_cohort") {
      NS_RETURN_IF_ERROR(OnlyKeys(s, f, {"type", "action", "cohort"}));
      NS_ASSIGN_OR_RETURN(st.cohort, Int(s, "cohort", f + ".cohort", 1, INT64_MAX, 0));
      if (st.cohort == 0) return Bad(f + ".cohort", "required (a static cohort's id)");
    } else {
      return Bad(f + ".action",
                 "unknown action '" + st.action + "' (known: webhook, notify_owner, set_property, add_to_cohort)");
    }
  } else {
    return Bad(f + ".type", "unknown step type '" + st.type + "' (known: wait, condition, action)");
  }
  return st;
}

json StepJson(const JourneyStep& s, bool with_secrets) {
  json j{{"type", s.type}};
  if (s.type == "wait") {
    if (s.wait_ms % 3'600'000 == 0)
      j["hours"] = s.wait_ms / 3'600'000;
    else if (s.wait_ms % 60'000 == 0)
      j["minutes"] = s.wait_ms / 60'000;
    else if (s.wait_ms % 1000 == 0)
      j["seconds"] = s.wait_ms / 1000;
    else
      j["seconds"] = s.wait_ms / 1000.0;
  } else if (s.type == "condition") {
    j["event"] = s.event;
    j["performed"] = s.performed;
  } else {
    j["action"] = s.action;
    if (s.action == "webhook") {
      j["url"] = s.url;
      if (with_secrets)
        j["secret"] = s.secret;
      else
        j["secret_set"] = !s.secret.empty();
      j["title"] = s.title;
      j["text"] = s.text;
      if (!s.payload.is_null()) j["payload"] = s.payload;
    } else if (s.action == "notify_owner") {
      j["channels"] = s.channels;
      j["title"] = s.title;
      j["text"] = s.text;
    } else if (s.action == "set_property") {
      j["property"] = s.property;
      j["value"] = s.value;
    } else {
      j["cohort"] = s.cohort;
    }
  }
  return j;
}

}  // namespace

StatusOr<JourneyDoc> JourneyDoc::Parse(const json& j) {
  if (!j.is_object()) return InvalidArgument("expected a journey object", "");
  NS_RETURN_IF_ERROR(OnlyKeys(j, "",
                              {"name", "description", "owner", "trigger", "audience", "steps", "limits", "delivery",
                               "holdout_percent", "goal", "lookback_hours"}));
  JourneyDoc d;
  NS_ASSIGN_OR_RETURN(d.name, Str(j, "name", "name", true));
  NS_ASSIGN_OR_RETURN(d.description, Str(j, "description", "description", false, kMaxText));
  NS_ASSIGN_OR_RETURN(d.owner, Str(j, "owner", "owner", false));

  if (!j.contains("trigger") || !j["trigger"].is_object())
    return Bad("trigger", "required: {\"type\":\"event\"|\"cohort\"|\"schedule\", ...}");
  const json& t = j["trigger"];
  NS_ASSIGN_OR_RETURN(d.trigger.type, Str(t, "type", "trigger.type", true));
  if (d.trigger.type == "event") {
    NS_RETURN_IF_ERROR(OnlyKeys(t, "trigger", {"type", "event"}));
    NS_ASSIGN_OR_RETURN(d.trigger.event, Str(t, "event", "trigger.event", true));
  } else if (d.trigger.type == "cohort") {
    NS_RETURN_IF_ERROR(OnlyKeys(t, "trigger", {"type", "cohort", "include_existing", "every_minutes"}));
    NS_ASSIGN_OR_RETURN(d.trigger.cohort, Int(t, "cohort", "trigger.cohort", 1, INT64_MAX, 0));
    if (d.trigger.cohort == 0) return Bad("trigger.cohort", "required (a cohort id)");
    if (t.contains("include_existing")) {
      if (!t["include_existing"].is_boolean()) return Bad("trigger.include_existing", "expected true or false");
      d.trigger.include_existing = t["include_existing"].get<bool>();
    }
    NS_ASSIGN_OR_RETURN(int64_t every, Int(t, "every_minutes", "trigger.every_minutes", 1, 1440, 60));
    d.trigger.every_minutes = static_cast<int>(every);
  } else if (d.trigger.type == "schedule") {
    NS_RETURN_IF_ERROR(OnlyKeys(t, "trigger", {"type", "at", "cohort"}));
    NS_ASSIGN_OR_RETURN(d.trigger.at, Str(t, "at", "trigger.at", true));
    NS_RETURN_IF_ERROR(ParseClock(d.trigger.at, "trigger.at").status());
    NS_ASSIGN_OR_RETURN(d.trigger.cohort, Int(t, "cohort", "trigger.cohort", 1, INT64_MAX, 0));
    if (d.trigger.cohort == 0) return Bad("trigger.cohort", "required: the cohort whose members enter");
  } else {
    return Bad("trigger.type", "unknown trigger '" + d.trigger.type + "' (known: event, cohort, schedule)");
  }

  if (j.contains("audience") && !j["audience"].is_null()) {
    if (!j["audience"].is_object()) return Bad("audience", "expected {\"cohort\": ID}");
    NS_RETURN_IF_ERROR(OnlyKeys(j["audience"], "audience", {"cohort"}));
    NS_ASSIGN_OR_RETURN(d.audience_cohort, Int(j["audience"], "cohort", "audience.cohort", 0, INT64_MAX, 0));
  }

  if (!j.contains("steps") || !j["steps"].is_array() || j["steps"].empty())
    return Bad("steps", "required: a list of wait, condition and action steps");
  if (j["steps"].size() > kMaxSteps) return Bad("steps", "at most 50 steps");
  bool has_action = false;
  for (size_t i = 0; i < j["steps"].size(); i++) {
    NS_ASSIGN_OR_RETURN(JourneyStep st, ParseStep(j["steps"][i], "steps[" + std::to_string(i) + "]"));
    has_action = has_action || st.type == "action";
    d.steps.push_back(std::move(st));
  }
  if (!has_action) return Bad("steps", "a journey needs at least one action step");

  if (j.contains("limits") && !j["limits"].is_null()) {
    const json& l = j["limits"];
    if (!l.is_object()) return Bad("limits", "expected an object");
    NS_RETURN_IF_ERROR(OnlyKeys(l, "limits", {"quiet_hours", "frequency_cap", "rate_per_minute", "end_date"}));
    NS_ASSIGN_OR_RETURN(d.limits.quiet_hours, Str(l, "quiet_hours", "limits.quiet_hours", false));
    if (!d.limits.quiet_hours.empty()) {
      const std::string& q = d.limits.quiet_hours;
      if (q.size() != 11 || q[5] != '-')
        return Bad("limits.quiet_hours", "expected \"HH:MM-HH:MM\" (e.g. 22:00-08:00), got '" + q + "'");
      NS_RETURN_IF_ERROR(ParseClock(q.substr(0, 5), "limits.quiet_hours").status());
      NS_RETURN_IF_ERROR(ParseClock(q.substr(6), "limits.quiet_hours").status());
      if (q.substr(0, 5) == q.substr(6)) return Bad("limits.quiet_hours", "start and end are equal");
    }
    if (l.contains("frequency_cap") && !l["frequency_cap"].is_null()) {
      const json& c = l["frequency_cap"];
      if (!c.is_object()) return Bad("limits.frequency_cap", "expected {\"max\": N, \"hours\": H}");
      NS_RETURN_IF_ERROR(OnlyKeys(c, "limits.frequency_cap", {"max", "hours"}));
      NS_ASSIGN_OR_RETURN(int64_t mx, Int(c, "max", "limits.frequency_cap.max", 1, 1000, 1));
      NS_ASSIGN_OR_RETURN(int64_t h, Int(c, "hours", "limits.frequency_cap.hours", 1, 24 * 90, 24));
      d.limits.frequency_max = static_cast<int>(mx);
      d.limits.frequency_hours = static_cast<int>(h);
    }
    NS_ASSIGN_OR_RETURN(int64_t rate, Int(l, "rate_per_minute", "limits.rate_per_minute", 0, 1'000'000, 0));
    d.limits.rate_per_minute = static_cast<int>(rate);
    NS_ASSIGN_OR_RETURN(d.limits.end_date, Str(l, "end_date", "limits.end_date", false));
    if (!d.limits.end_date.empty()) NS_RETURN_IF_ERROR(ParseDate(d.limits.end_date, "limits.end_date").status());
  }
  if (j.contains("delivery") && !j["delivery"].is_null()) {
    const json& dl = j["delivery"];
    if (!dl.is_object()) return Bad("delivery", "expected {\"max_attempts\", \"backoff_seconds\"}");
    NS_RETURN_IF_ERROR(OnlyKeys(dl, "delivery", {"max_attempts", "backoff_seconds"}));
    NS_ASSIGN_OR_RETURN(int64_t a, Int(dl, "max_attempts", "delivery.max_attempts", 1, 20, 5));
    NS_ASSIGN_OR_RETURN(int64_t b, Int(dl, "backoff_seconds", "delivery.backoff_seconds", 1, 3600, 30));
    d.delivery.max_attempts = static_cast<int>(a);
    d.delivery.backoff_seconds = static_cast<int>(b);
  }
  if (j.contains("holdout_percent") && !j["holdout_percent"].is_null()) {
    if (!j["holdout_percent"].is_number()) return Bad("holdout_percent", "expected a number from 0 to 90");
    d.holdout_percent = j["holdout_percent"].get<double>();
    if (!(d.holdout_percent >= 0 && d.holdout_percent <= 90))
      return Bad("holdout_percent", "expected a number from 0 to 90");
  }
  if (j.contains("goal") && !j["goal"].is_null()) {
    const json& g = j["goal"];
    if (!g.is_object()) return Bad("goal", "expected {\"event\": NAME, \"within_days\": N}");
    NS_RETURN_IF_ERROR(OnlyKeys(g, "goal", {"event", "within_days"}));
    NS_ASSIGN_OR_RETURN(d.goal.event, Str(g, "event", "goal.event", true));
    NS_ASSIGN_OR_RETURN(int64_t w, Int(g, "within_days", "goal.within_days", 1, 365, 7));
    d.goal.within_days = static_cast<int>(w);
  }
  NS_ASSIGN_OR_RETURN(int64_t lb, Int(j, "lookback_hours", "lookback_hours", 0, 24 * 30, 1));
  d.lookback_hours = static_cast<int>(lb);
  return d;
}

json JourneyDoc::ToJson(bool with_secrets) const {
  json t{{"type", trigger.type}};
  if (trigger.type == "event") t["event"] = trigger.event;
  if (trigger.type == "cohort") {
    t["cohort"] = trigger.cohort;
    t["include_existing"] = trigger.include_existing;
    t["every_minutes"] = trigger.every_minutes;
  }
  if (trigger.type == "schedule") {
    t["at"] = trigger.at;
    t["cohort"] = trigger.cohort;
  }
  json steps_json = json::array();
  for (const auto& s : steps) steps_json.push_back(StepJson(s, with_secrets));
  json limits_json{
      {"quiet_hours", limits.quiet_hours}, {"rate_per_minute", limits.rate_per_minute}, {"end_date", limits.end_date}};
  limits_json["frequency_cap"] =
      limits.frequency_max > 0 ? json{{"max", limits.frequency_max}, {"hours", limits.frequency_hours}} : json();
  json out{{"name", name},
           {"description", description},
           {"owner", owner},
           {"trigger", t},
           {"audience", audience_cohort ? json{{"cohort", audience_cohort}} : json()},
           {"steps", steps_json},
           {"limits", limits_json},
           {"delivery", {{"max_attempts", delivery.max_attempts}, {"backoff_seconds", delivery.backoff_seconds}}},
           {"holdout_percent", holdout_percent},
           {"goal", goal.event.empty() ? json() : json{{"event", goal.event}, {"within_days", goal.within_days}}},
           {"lookback_hours", lookback_hours}};
  return out;
}

size_t JourneyDoc::FirstAction() const {
  for (size_t i = 0; i < steps.size(); i++)
    if (steps[i].type == "action") return i;
  return steps.size();
}

}  // namespace ns
