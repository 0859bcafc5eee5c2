#include "ops/documents.h"

#include <limits>
#include <memory>

#include "core/time_zone.h"

namespace ns {

using nlohmann::json;

Status MalformedDocument(const char* table, const char* column, int64_t row_id, const std::string& what) {
  return Corruption(std::string(table) + "." + column + " of row " + std::to_string(row_id) + " is malformed: " + what);
}

namespace {

// Reads one stored JSON object field by field. The first problem is kept, naming the field
// ("period.from: expected a date"); reads after it answer defaults, so a Parse reads straight
// through and asks status() once at the end.
class Reader {
 public:
  explicit Reader(const json& j) : Reader(j, "", std::make_shared<Status>()) {}

  Status status() const { return *st_; }
  bool Has(const char* k) const { return j_.is_object() && j_.contains(k); }
  void Fail(const std::string& field, const std::string& what) {
    if (!st_->ok()) return;
    std::string name = path_ + field;
    if (!name.empty() && name.back() == '.') name.pop_back();
    *st_ = Corruption(name.empty() ? what : name + ": " + what);
  }

  // A required field of any type.
  const json& Any(const char* k) {
    if (Has(k)) return j_.find(k).value();
    Fail(k, "missing");
    return Null();
  }
  // A field that may be absent: nullptr then.
  const json* Maybe(const char* k) { return Has(k) ? &j_.find(k).value() : nullptr; }

  std::string String(const char* k) {
    const json& v = Any(k);
    if (v.is_string()) return v.get<std::string>();
    if (Has(k)) Fail(k, "expected a string");
    return {};
  }
  std::optional<std::string> NullableString(const char* k) {
    const json& v = Any(k);
    if (v.is_null()) return std::nullopt;
    return String(k);
  }
  std::optional<std::string> OptionalString(const char* k) {
    if (!Has(k)) return std::nullopt;
    return String(k);
  }
  template <size_t N>
  std::string OneOf(const char* k, const char* const (&list)[N]) {
    std::string s = String(k);
    for (const char* x : list)
      if (s == x) return s;
    if (Has(k) && st_->ok()) Fail(k, "unknown value '" + s + "'");
    return s;
  }
  std::optional<std::string> NullableDate(const char* k) {
    std::optional<std::string> s = NullableString(k);
    if (s && !ParseDate(*s, k).ok()) Fail(k, "expected a date YYYY-MM-DD, got '" + *s + "'");
    return s;
  }
  std::string Date(const char* k) {
    std::string s = String(k);
    if (Has(k) && st_->ok() && !ParseDate(s, k).ok()) Fail(k, "expected a date YYYY-MM-DD, got '" + s + "'");
    return s;
  }

  int64_t Int(const char* k) {
    const json& v = Any(k);
    if (v.is_number_integer()) return v.get<int64_t>();
    if (Has(k)) Fail(k, "expected an integer");
    return 0;
  }
  std::optional<int64_t> NullableInt(const char* k) {
    if (Any(k).is_null()) return std::nullopt;
    return Int(k);
  }
  std::optional<int32_t> OptionalInt32(const char* k) {
    if (!Has(k)) return std::nullopt;
    int64_t v = Int(k);
    if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) Fail(k, "out of range");
    return static_cast<int32_t>(v);
  }
  // A number kept as written (100 stays 100).
  const json& Number(const char* k) {
    const json& v = Any(k);
    if (!v.is_number() && Has(k)) Fail(k, "expected a number");
    return v;
  }
  const json& NullableNumber(const char* k) {
    const json& v = Any(k);
    if (!v.is_null() && !v.is_number()) Fail(k, "expected a number or null");
    return v;
  }
  std::optional<double> NullableDouble(const char* k) {
    const json& v = NullableNumber(k);
    return v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt;
  }
  std::optional<double> OptionalDouble(const char* k) {
    if (!Has(k)) return std::nullopt;
    const json& v = Any(k);
    if (!v.is_number()) Fail(k, "expected a number");
    return v.is_number() ? std::optional<double>(v.get<double>()) : std::nullopt;
  }
  const json& Object(const char* k) {
    const json& v = Any(k);
    if (!v.is_object() && Has(k)) Fail(k, "expected an object");
    return v;
  }
  const json& NullableObject(const char* k) {
    const json& v = Any(k);
    if (!v.is_null() && !v.is_object()) Fail(k, "expected an object or null");
    return v;
  }
  const json& Array(const char* k) {
    const json& v = Any(k);
    if (!v.is_array() && Has(k)) Fail(k, "expected a list");
    return v;
  }
  // A field of one of the given JSON types (a description or an object, ...).
  const json& Either(const char* k, json::value_t a, json::value_t b, const char* expected) {
    const json& v = Any(k);
    if (v.type() != a && v.type() != b && Has(k)) Fail(k, std::string("expected ") + expected);
    return v;
  }
  std::vector<int64_t> IntList(const char* k) {
    std::vector<int64_t> out;
    for (const json& x : Array(k)) {
      if (!x.is_number_integer()) {
        Fail(k, "expected a list of ids");
        break;
      }
      out.push_back(x.get<int64_t>());
    }
    return out;
  }
  std::vector<std::string> StringList(const char* k) {
    std::vector<std::string> out;
    for (const json& x : Array(k)) {
      if (!x.is_string()) {
        Fail(k, "expected a list of texts");
        break;
      }
      out.push_back(x.get<std::string>());
    }
    return out;
  }

  // The object at k (or at index i of a list), read with the same error record.
  Reader In(const char* k) { return Reader(Object(k), path_ + k + ".", st_); }
  Reader At(const char* list, size_t i, const json& v) {
    return Reader(v, path_ + list + "[" + std::to_string(i) + "].", st_);
  }

 private:
  Reader(const json& j, std::string path, std::shared_ptr<Status> st) : j_(j), path_(std::move(path)), st_(st) {
    if (!j_.is_object()) Fail("", "expected an object");
  }
  static const json& Null() {
    static const json kNull;
    return kNull;
  }
  const json& j_;
  std::string path_;
  std::shared_ptr<Status> st_;
};

json OptionalJson(const std::optional<std::string>& s) { return s ? json(*s) : json(); }
json OptionalJson(const std::optional<double>& x) { return x ? json(*x) : json(); }

}  // namespace

// ---------------------------------------------------------------- scenarios and actions

StatusOr<ScenarioDoc> ScenarioDoc::Parse(const json& j) {
  Reader r(j);
  ScenarioDoc d;
  d.name = r.String("name");
  d.business_module = r.String("business_module");
  d.owner = r.String("owner");
  d.status = r.OneOf("status", kScenarioStatuses);
  d.key_user_group = r.Either("key_user_group", json::value_t::string, json::value_t::object, "a text or an object");
  d.pain_points = r.Either("pain_points", json::value_t::string, json::value_t::array, "a text or a list");
  d.goal = r.Either("goal", json::value_t::object, json::value_t::string, "an object or a text");
  d.success_criteria = r.Array("success_criteria");
  d.period = r.NullableObject("period");
  if (d.period.is_object()) {
    Reader p = r.In("period");
    p.Date("from");
    p.Date("to");
  }
  d.funnel = r.NullableObject("funnel");
  if (const json* s = r.Maybe("from_sop")) d.from_sop = *s;
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json ScenarioDoc::ToJson() const {
  json j{{"name", name},     {"business_module", business_module},   {"owner", owner},
         {"status", status}, {"key_user_group", key_user_group},     {"pain_points", pain_points},
         {"goal", goal},     {"success_criteria", success_criteria}, {"period", period},
         {"funnel", funnel}};
  if (from_sop) j["from_sop"] = *from_sop;
  return j;
}

std::optional<int32_t> ScenarioDoc::FirstDay() const {
  if (!period.is_object()) return std::nullopt;
  return ParseDate(period["from"].get_ref<const std::string&>(), "period.from").value();  // checked by Parse
}

std::optional<int32_t> ScenarioDoc::LastDay() const {
  if (!period.is_object()) return std::nullopt;
  return ParseDate(period["to"].get_ref<const std::string&>(), "period.to").value();
}

StatusOr<ActionDoc> ActionDoc::Parse(const json& j) {
  Reader r(j);
  ActionDoc d;
  d.action = r.String("action");
  d.strategy = r.String("strategy");
  d.owner = r.String("owner");
  d.delivery_standard = r.String("delivery_standard");
  d.start_date = r.NullableDate("start_date");
  d.due_date = r.NullableDate("due_date");
  d.status = r.OneOf("status", kActionStatuses);
  d.depends_on = r.IntList("depends_on");
  d.resources = r.Object("resources");
  d.progress = r.Array("progress");
  for (size_t i = 0; i < d.progress.size(); i++) {
    Reader p = r.At("progress", i, d.progress[i]);
    p.String("note");
    if (p.Has("date")) p.Date("date");
  }
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json ActionDoc::ToJson() const {
  return json{{"action", action},
              {"strategy", strategy},
              {"owner", owner},
              {"delivery_standard", delivery_standard},
              {"start_date", OptionalJson(start_date)},
              {"due_date", OptionalJson(due_date)},
              {"status", status},
              {"depends_on", depends_on},
              {"resources", resources},
              {"progress", progress}};
}

// ---------------------------------------------------------------- KPIs

StatusOr<KpiDoc> KpiDoc::Parse(const json& j) {
  Reader r(j);
  KpiDoc d;
  d.name = r.String("name");
  d.owner = r.String("owner");
  d.reason = r.String("reason");
  d.description = r.String("description");
  d.unit = r.String("unit");
  d.scenario_id = r.NullableInt("scenario_id");
  const std::string direction = r.String("direction");
  if (direction != "higher" && direction != "lower" && r.status().ok()) r.Fail("direction", "expected higher or lower");
  d.higher_is_better = direction == "higher";
  d.target = r.NullableNumber("target");
  d.thresholds = r.Object("thresholds");
  if (d.thresholds.is_object()) {
    Reader t = r.In("thresholds");
    if (t.Has("green")) t.Number("green");
    if (t.Has("yellow")) t.Number("yellow");
  }
  d.dimensions = r.StringList("dimensions");
  d.period = r.Object("period");
  if (d.period.is_object()) {
    Reader p = r.In("period");
    std::string type = p.Has("type") ? p.String("type") : "month";
    if (type == "custom") {
      p.Date("from");
      p.Date("to");
    }
  }
  d.reduce = r.Object("reduce");
  if (d.reduce.is_object() && d.reduce.contains("op")) r.In("reduce").String("op");
  if (d.reduce.is_object() && d.reduce.contains("formula")) {
    r.In("reduce").String("formula");
    d.query = r.Any("query");
  } else {
    d.query = r.Object("query");
    if (d.query.is_object()) r.In("query").String("kind");
  }
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json KpiDoc::ToJson() const {
  return json{{"name", name},
              {"owner", owner},
              {"reason", reason},
              {"description", description},
              {"unit", unit},
              {"scenario_id", scenario_id ? json(*scenario_id) : json()},
              {"direction", higher_is_better ? "higher" : "lower"},
              {"target", target},
              {"thresholds", thresholds},
              {"dimensions", dimensions},
              {"period", period},
              {"reduce", reduce},
              {"query", query}};
}

StatusOr<KpiState> KpiState::Parse(const json& j) {
  Reader r(j);
  KpiState s;
  s.auto_reason = r.OptionalString("auto_reason");
  if (r.Has("error")) {
    Reader e = r.In("error");
    s.error = Error{e.String("code"), e.String("message")};
    s.refreshed_at = r.Int("refreshed_at");
    NS_RETURN_IF_ERROR(r.status());
    return s;
  }
  {
    Reader p = r.In("period");
    s.period_from = p.Date("from");
    s.period_to = p.Date("to");
  }
  s.as_of = r.Date("as_of");
  s.status = r.OptionalString("status");
  s.value_through = r.OptionalString("value_through");
  s.actual = r.NullableDouble("actual");
  s.numerator = r.OptionalDouble("numerator");
  s.denominator = r.OptionalDouble("denominator");
  s.target = r.NullableNumber("target");
  const std::string direction = r.String("direction");
  if (direction != "higher" && direction != "lower" && r.status().ok()) r.Fail("direction", "expected higher or lower");
  s.higher_is_better = direction == "higher";
  s.achievement_rate = r.NullableDouble("achievement_rate");
  s.light = r.NullableString("light");
  const json& daily = r.Array("daily");
  for (size_t i = 0; i < daily.size(); i++) {
    Reader d = r.At("daily", i, daily[i]);
    KpiDailyValue v;
    v.date = d.Date("date");
    v.value = d.NullableDouble("value");
    v.weight = d.OptionalDouble("weight");
    s.daily.push_back(std::move(v));
  }
  s.forecast = r.NullableObject("forecast");
  s.refreshed_at = r.Int("refreshed_at");
  NS_RETURN_IF_ERROR(r.status());
  return s;
}

json KpiState::ToJson() const {
  json j;
  if (error) {
    j = {{"error", {{"code", error->code}, {"message", error->message}}},
         {"refreshed_at", refreshed_at},
         {"light", nullptr},
         {"actual", nullptr}};
  } else {
    json days = json::array();
    for (const KpiDailyValue& d : daily) {
      json row{{"date", d.date}, {"value", OptionalJson(d.value)}};
      if (d.weight) row["weight"] = *d.weight;
      days.push_back(std::move(row));
    }
    j = {{"period", {{"from", period_from}, {"to", period_to}}},
         {"as_of", as_of},
         {"actual", OptionalJson(actual)},
         {"target", target},
         {"direction", higher_is_better ? "higher" : "lower"},
         {"achievement_rate", OptionalJson(achievement_rate)},
         {"light", OptionalJson(light)},
         {"daily", std::move(days)},
         {"forecast", forecast},
         {"refreshed_at", refreshed_at}};
    if (status) j["status"] = *status;
    if (value_through) j["value_through"] = *value_through;
    if (numerator) j["numerator"] = *numerator;
    if (denominator) j["denominator"] = *denominator;
  }
  if (auto_reason) j["auto_reason"] = *auto_reason;
  return j;
}

StatusOr<KpiSnapshotDetail> KpiSnapshotDetail::Parse(const json& j) {
  Reader r(j);
  KpiSnapshotDetail d;
  d.forecast = r.NullableObject("forecast");
  d.numerator = r.OptionalDouble("numerator");
  d.denominator = r.OptionalDouble("denominator");
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json KpiSnapshotDetail::ToJson() const {
  json j{{"forecast", forecast}};
  if (numerator) j["numerator"] = *numerator;
  if (denominator) j["denominator"] = *denominator;
  return j;
}

// ---------------------------------------------------------------- alerts

StatusOr<AlertRuleDoc> AlertRuleDoc::Parse(const json& j) {
  Reader r(j);
  AlertRuleDoc d;
  d.kpi_id = r.Int("kpi_id");
  d.type = r.OneOf("type", kAlertRuleTypes);
  d.threshold_pct = r.Number("threshold_pct");
  d.threshold = r.Number("threshold");
  d.compare = r.String("compare");
  if (d.compare != "dod" && d.compare != "wow" && r.status().ok()) r.Fail("compare", "expected dod or wow");
  d.channels = r.IntList("channels");
  d.cooldown_minutes = r.Int("cooldown_minutes");
  d.name = r.Any("name");
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json AlertRuleDoc::ToJson() const {
  return json{{"kpi_id", kpi_id},
              {"type", type},
              {"threshold_pct", threshold_pct},
              {"threshold", threshold},
              {"compare", compare},
              {"channels", channels},
              {"name", name},
              {"cooldown_minutes", cooldown_minutes}};
}

StatusOr<AlertDetail> AlertDetail::Parse(const json& j) {
  Reader r(j);
  AlertDetail d;
  d.type = r.String("type");
  d.kpi_name = r.String("kpi_name");
  d.facts = r.Any("facts");
  d.root_cause = r.Object("root_cause");
  if (d.root_cause.is_object()) {
    Reader rc = r.In("root_cause");
    if (rc.Has("top_contributors")) {
      const json& top = rc.Array("top_contributors");
      for (size_t i = 0; i < top.size(); i++) {
        Reader c = rc.At("top_contributors", i, top[i]);
        c.String("dimension");
        c.String("value");
        c.Number("contribution");
        c.Number("share");
      }
    }
    if (rc.Has("step") && !d.root_cause["step"].is_null()) {
      Reader s = rc.In("step");
      s.String("from");
      s.String("to");
      s.Number("relative_change");
    }
  }
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json AlertDetail::ToJson() const {
  return json{{"type", type}, {"facts", facts}, {"root_cause", root_cause}, {"kpi_name", kpi_name}};
}

// ---------------------------------------------------------------- evaluations and SOPs

StatusOr<EvaluationDoc> EvaluationDoc::Parse(const json& j) {
  Reader r(j);
  EvaluationDoc d;
  d.scenario_id = r.Int("scenario_id");
  d.scenario = r.String("scenario");
  d.period = r.NullableObject("period");
  d.owner = r.String("owner");
  d.kpis = r.Array("kpis");
  d.actions = r.Object("actions");
  d.biggest_movers = r.Array("biggest_movers");
  d.what_worked = r.String("what_worked");
  d.problems = r.String("problems");
  d.next_measures = r.String("next_measures");
  d.status = r.String("status");
  if (d.status != "draft" && d.status != "final" && r.status().ok()) r.Fail("status", "expected draft or final");
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json EvaluationDoc::ToJson() const {
  return json{{"scenario_id", scenario_id},
              {"scenario", scenario},
              {"period", period},
              {"owner", owner},
              {"kpis", kpis},
              {"actions", actions},
              {"biggest_movers", biggest_movers},
              {"what_worked", what_worked},
              {"problems", problems},
              {"next_measures", next_measures},
              {"status", status}};
}

StatusOr<SopDoc> SopDoc::Parse(const json& j) {
  Reader r(j);
  SopDoc d;
  d.name = r.String("name");
  d.scenario = r.Object("scenario");
  d.source_scenario_id = r.Int("source_scenario_id");
  {
    Reader l = r.In("lessons");
    d.what_worked = l.String("what_worked");
    d.problems = l.String("problems");
    d.next_measures = l.String("next_measures");
  }
  d.results = r.Any("results");
  const json& acts = r.Array("actions");
  for (size_t i = 0; i < acts.size(); i++) {
    Reader a = r.At("actions", i, acts[i]);
    SopAction t;
    t.strategy = a.String("strategy");
    t.action = a.String("action");
    t.owner = a.String("owner");
    t.delivery_standard = a.String("delivery_standard");
    t.resources = a.Any("resources");
    t.start_offset_days = a.OptionalInt32("start_offset_days");
    t.due_offset_days = a.OptionalInt32("due_offset_days");
    for (int64_t x : a.IntList("depends_on_index")) {
      if (x < 0) a.Fail("depends_on_index", "expected positions >= 0");
      t.depends_on_index.push_back(static_cast<size_t>(x));
    }
    d.actions.push_back(std::move(t));
  }
  NS_RETURN_IF_ERROR(r.status());
  return d;
}

json SopDoc::ToJson() const {
  json acts = json::array();
  for (const SopAction& a : actions) {
    json t{{"strategy", a.strategy},   {"action", a.action},
           {"resources", a.resources}, {"delivery_standard", a.delivery_standard},
           {"owner", a.owner},         {"depends_on_index", a.depends_on_index}};
    if (a.start_offset_days) t["start_offset_days"] = *a.start_offset_days;
    if (a.due_offset_days) t["due_offset_days"] = *a.due_offset_days;
    acts.push_back(std::move(t));
  }
  return json{{"name", name},
              {"scenario", scenario},
              {"actions", std::move(acts)},
              {"source_scenario_id", source_scenario_id},
              {"lessons", {{"what_worked", what_worked}, {"problems", problems}, {"next_measures", next_measures}}},
              {"results", results}};
}

// ---------------------------------------------------------------- outbox

StatusOr<OutboxMessage> OutboxMessage::Parse(const json& j) {
  Reader r(j);
  OutboxMessage m;
  Notification& n = m.notification;
  // Every field is written; defaults as Notification's for a message without one.
  auto text = [&](const char* k, std::string fallback) { return r.Has(k) ? r.String(k) : fallback; };
  n.title = text("title", "");
  n.text = text("text", "");
  n.level = text("level", "info");
  n.link = text("link", "");
  n.dedup_key = text("dedup_key", "");
  if (const json* data = r.Maybe("data")) n.data = *data;
  NS_RETURN_IF_ERROR(r.status());
  return m;
}

json OutboxMessage::ToJson() const {
  const Notification& n = notification;
  return json{{"title", n.title}, {"text", n.text}, {"level", n.level},
              {"link", n.link},   {"data", n.data}, {"dedup_key", n.dedup_key}};
}

}  // namespace ns
