#include "automation/journeys.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <unordered_map>

#include "auth/accounts.h"
#include "automation/journey_rules.h"
#include "core/log_safe.h"
#include "ops/alerts.h"
#include "ops/notify.h"
#include "stats/experiment_analysis.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/person_table.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& AutomationMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "journeys, their entries, step log and sends",
       R"SQL(
CREATE TABLE journeys(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  project TEXT NOT NULL,
  doc TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'draft',
  created_by TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  activated_at INTEGER,
  cohort_members TEXT,
  cohort_evaluated_at INTEGER,
  last_schedule_day TEXT NOT NULL DEFAULT '');
CREATE INDEX journeys_project ON journeys(project);
CREATE TABLE journey_entries(
  journey_id INTEGER NOT NULL REFERENCES journeys(id) ON DELETE CASCADE,
  person INTEGER NOT NULL,
  distinct_id TEXT NOT NULL,
  holdout INTEGER NOT NULL,
  entered_at INTEGER NOT NULL,
  step INTEGER NOT NULL,
  anchor_at INTEGER NOT NULL,
  due_at INTEGER NOT NULL,
  state TEXT NOT NULL,
  exit_reason TEXT NOT NULL DEFAULT '',
  action_at INTEGER,
  PRIMARY KEY(journey_id, person));
CREATE INDEX journey_entries_due ON journey_entries(state, due_at);
CREATE TABLE journey_step_log(
  journey_id INTEGER NOT NULL REFERENCES journeys(id) ON DELETE CASCADE,
  step INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  person INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY(journey_id, step, outcome, person));
CREATE TABLE journey_sends(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  journey_id INTEGER NOT NULL REFERENCES journeys(id) ON DELETE CASCADE,
  project TEXT NOT NULL,
  person INTEGER NOT NULL,
  distinct_id TEXT NOT NULL,
  step INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  action TEXT NOT NULL,
  message TEXT NOT NULL,
  state TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  created_at INTEGER NOT NULL,
  started_at INTEGER,
  sent_at INTEGER,
  http_status INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '');
CREATE INDEX journey_sends_due ON journey_sends(state, next_attempt_at);
CREATE INDEX journey_sends_person ON journey_sends(project, person, created_at);
CREATE INDEX journey_sends_journey ON journey_sends(journey_id, state);
)SQL"},
  };
  return kMigrations;
}

namespace {

constexpr int64_t kDayMs = 86'400'000;

bool IsMessageAction(const std::string& a) { return a == "webhook" || a == "notify_owner"; }

std::string Base64Encode(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Base64Decode(const std::string& text) {
  if (text.empty()) return {};
  std::string out(3 * text.size() / 4 + 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  if (n < 0) return {};
  size_t pad = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; i--) pad++;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string EncodeBitmap(const Roaring& r) {
  std::string bytes(r.getSizeInBytes(true), '\0');
  r.write(bytes.data(), true);
  return Base64Encode(bytes);
}

Roaring DecodeBitmap(const std::string& text) {
  std::string bytes = Base64Decode(text);
  if (bytes.empty()) return Roaring();
  try {
    return Roaring::readSafe(bytes.data(), bytes.size());
  } catch (const std::exception&) {
    return Roaring();
  }
}

// Timestamps of event `name` per person (persons as of `snap`), for the persons in `want`
// (every person when null), at or after from_ts; each list sorted.
StatusOr<std::unordered_map<uint32_t, std::vector<int64_t>>> EventTimes(const StoreSnapshot& snap,
                                                                        const std::string& name, const Roaring* want,
                                                                        int64_t from_ts) {
  std::unordered_map<uint32_t, std::vector<int64_t>> out;
  auto code = snap.events ? snap.events->Find(name) : std::nullopt;
  if (!code) return out;
  for (const auto& b : snap.blocks) {
    if (b->max_ts() < from_ts || !b->HasEvent(*code)) continue;
    auto [begin, end] = b->EventRows(*code);
    const auto& dids = b->did();
    const auto& ts = b->ts();
    for (const uint32_t* r = begin; r != end; ++r) {
      if (ts[*r] < from_ts) continue;
      uint32_t did = dids[*r];
      if (snap.persons->Erased(did)) continue;
      uint32_t person = snap.persons->PersonOf(did);
      if (want && !want->contains(person)) continue;
      out[person].push_back(ts[*r]);
    }
  }
  NS_RETURN_IF_ERROR(CheckBlocks(snap));
  for (auto& [p, v] : out) std::sort(v.begin(), v.end());
  return out;
}

bool AnyIn(const std::vector<int64_t>* v, int64_t from, int64_t to) {
  if (!v) return false;
  auto it = std::lower_bound(v->begin(), v->end(), from);
  return it != v->end() && *it <= to;
}

std::string PropText(const PropValue* v) {
  if (!v) return "";
  return v->AsString();
}

json RenderJson(const json& tmpl, const std::function<std::string(const std::string&)>& lookup) {
  if (tmpl.is_string()) return RenderTemplate(tmpl.get<std::string>(), lookup);
  if (tmpl.is_object() || tmpl.is_array()) {
    json out = tmpl;
    for (auto it = out.begin(); it != out.end(); ++it) *it = RenderJson(*it, lookup);
    return out;
  }
  return tmpl;
}

std::string IdList(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
  return s.empty() ? "0" : s;
}

}  // namespace

std::string RenderTemplate(const std::string& tmpl, const std::function<std::string(const std::string&)>& lookup) {
  std::string out;
  size_t i = 0;
  while (i < tmpl.size()) {
    size_t open = tmpl.find("{{", i);
    if (open == std::string::npos) break;
    size_t close = tmpl.find("}}", open + 2);
    if (close == std::string::npos) break;
    out.append(tmpl, i, open - i);
    std::string name = tmpl.substr(open + 2, close - open - 2);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    out += lookup(name);
    i = close + 2;
  }
  out.append(tmpl, i, std::string::npos);
  return out;
}

JourneyService::JourneyService(ProjectRegistry& registry, OpsService& ops, PeopleService& people,
                               JourneyEngineOptions options)
    : registry_(registry), ops_(ops), people_(people), db_(registry.meta_db()), options_(std::move(options)) {}

JourneyService::~JourneyService() { Stop(); }

StatusOr<std::unique_ptr<JourneyService>> JourneyService::Open(ProjectRegistry& registry, OpsService& ops,
                                                               PeopleService& people, JourneyEngineOptions options) {
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("automation", AutomationMigrations()));
  std::unique_ptr<JourneyService> s(new JourneyService(registry, ops, people, std::move(options)));
  NS_RETURN_IF_ERROR(s->RecoverSending());
  // A cohort a journey names (trigger, audience, add_to_cohort) cannot be deleted under it.
  JourneyService* self = s.get();
  people.AddReferrers(
      [self](const std::string& project, int64_t cohort) { return self->UsingCohort(project, cohort); });
  return s;
}

Status JourneyService::RecoverSending() {
  // Claimed by a process that ended before recording the outcome: it may or may not have
  // reached the receiver. Sending it again with the same idempotency key is safe.
  NS_RETURN_IF_ERROR(db_.Exec("UPDATE journey_sends SET state = 'pending' WHERE state = 'sending'"));
  int64_t n = db_.Changes();
  if (n > 0) spdlog::warn("journeys: {} sends were in flight when the server stopped; sending them again", n);
  return Status::OK();
}

// ---------------------------------------------------------------- API

StatusOr<JourneyService::Active> JourneyService::LoadJourney(const std::string& project, int64_t id,
                                                             std::string* status) {
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT doc, status, activated_at FROM journeys WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("journey " + std::to_string(id) + " not found");
  json j = json::parse(rows[0].Str(0), nullptr, false);
  auto doc = JourneyDoc::Parse(j);
  if (!doc.ok())
    return Corruption("journeys.doc of row " + std::to_string(id) + " is malformed: " + doc.status().message());
  if (status) *status = rows[0].Str(1);
  return Active{id, project, std::move(doc).value(), rows[0].IsNull(2) ? 0 : rows[0].Int(2)};
}

StatusOr<json> JourneyService::Create(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(JourneyDoc doc, JourneyDoc::Parse(body));
  for (int64_t c : {doc.trigger.cohort, doc.audience_cohort})
    if (c) {
      auto h = people_.Headline(who.project, c, false);
      if (!h.ok())
        return InvalidArgument("cohort " + std::to_string(c) + " not found in this project",
                               c == doc.trigger.cohort ? "trigger.cohort" : "audience.cohort");
    }
  int64_t now = NowMs();
  NS_ASSIGN_OR_RETURN(
      int64_t id,
      db_.Insert("INSERT INTO journeys(project, doc, status, created_by, created_at, updated_at) VALUES(?, ?, 'draft', "
                 "?, ?, ?)",
                 {who.project, doc.ToJson(true).dump(), who.actor, now, now}));
  NS_RETURN_IF_ERROR(Audit(db_, who, "create", "journey", id, nullptr, doc.ToJson(false)));
  return Get(who.project, id);
}

StatusOr<std::vector<std::string>> JourneyService::UsingCohort(const std::string& project, int64_t cohort) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, doc FROM journeys WHERE project = ? ORDER BY id", {project}));
  std::vector<std::string> out;
  for (auto& r : rows) {
    auto doc = JourneyDoc::Parse(json::parse(r.Str(1), nullptr, false));
    if (!doc.ok()) continue;
    bool uses = doc->trigger.cohort == cohort || doc->audience_cohort == cohort;
    for (const auto& st : doc->steps) uses = uses || (st.action == "add_to_cohort" && st.cohort == cohort);
    if (uses) out.push_back("journey " + std::to_string(r.Int(0)) + " '" + doc->name + "'");
  }
  return out;
}

StatusOr<json> JourneyService::Get(const std::string& project, int64_t id, bool reveal_urls) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT doc, status, created_by, created_at, updated_at, activated_at FROM "
                                           "journeys WHERE id = ? AND project = ?",
                                           {id, project}));
  if (rows.empty()) return NotFound("journey " + std::to_string(id) + " not found");
  json j = json::parse(rows[0].Str(0), nullptr, false);
  auto doc = JourneyDoc::Parse(j);
  if (!doc.ok())
    return Corruption("journeys.doc of row " + std::to_string(id) + " is malformed: " + doc.status().message());
  json out = doc->ToJson(false);
  // A webhook URL may carry a token (Slack-style hooks): viewers see it masked, as channels.
  if (!reveal_urls)
    for (auto& st : out["steps"])
      if (st.contains("url")) st["url"] = MaskChannelUrl(st["url"].get<std::string>());
  out["id"] = id;
  out["status"] = rows[0].Str(1);
  out["created_by"] = rows[0].Str(2);
  out["created_at"] = FormatIsoUtc(rows[0].Int(3));
  out["updated_at"] = FormatIsoUtc(rows[0].Int(4));
  out["activated_at"] = rows[0].IsNull(5) ? json() : json(FormatIsoUtc(rows[0].Int(5)));
  NS_ASSIGN_OR_RETURN(auto counts, db_.Query("SELECT COUNT(*), COALESCE(SUM(holdout), 0) FROM journey_entries WHERE "
                                             "journey_id = ?",
                                             {id}));
  out["entered"] = counts[0].Int(0);
  out["holdout"] = counts[0].Int(1);
  NS_ASSIGN_OR_RETURN(auto sent,
                      db_.Query("SELECT COUNT(*) FROM journey_sends WHERE journey_id = ? AND state = 'sent'", {id}));
  out["sent"] = sent[0].Int(0);
  return out;
}

StatusOr<json> JourneyService::List(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM journeys WHERE project = ? ORDER BY id", {project}));
  json out = json::array();
  for (auto& r : rows) {
    NS_ASSIGN_OR_RETURN(json j, Get(project, r.Int(0)));
    json item{{"id", j["id"]},           {"name", j["name"]},       {"status", j["status"]},
              {"trigger", j["trigger"]}, {"entered", j["entered"]}, {"holdout", j["holdout"]},
              {"sent", j["sent"]},       {"owner", j["owner"]},     {"updated_at", j["updated_at"]}};
    auto res = Results(project, r.Int(0));
    item["lift"] = res.ok() && (*res)["comparison"].is_object() ? (*res)["comparison"]["lift"] : json();
    out.push_back(item);
  }
  return out;
}

StatusOr<json> JourneyService::Update(const Principal& who, int64_t id, const json& body) {
  std::string status;
  NS_ASSIGN_OR_RETURN(Active old, LoadJourney(who.project, id, &status));
  NS_ASSIGN_OR_RETURN(JourneyDoc doc, JourneyDoc::Parse(body));
  // A webhook step sent without its secret keeps the stored one (answers never show it).
  for (size_t i = 0; i < doc.steps.size() && i < old.doc.steps.size(); i++) {
    JourneyStep& s = doc.steps[i];
    const json& bs = body["steps"][i];
    if (s.action == "webhook" && old.doc.steps[i].action == "webhook" && !bs.contains("secret"))
      s.secret = old.doc.steps[i].secret;
  }
  NS_ASSIGN_OR_RETURN(auto n, db_.Query("SELECT COUNT(*) FROM journey_entries WHERE journey_id = ?", {id}));
  if (n[0].Int(0) > 0) {
    json a = old.doc.ToJson(true), b = doc.ToJson(true);
    for (const char* fixed : {"trigger", "steps", "holdout_percent"})
      if (a[fixed] != b[fixed])
        return Status(StatusCode::kFailedPrecondition,
                      std::string(fixed) + ": cannot change once persons have entered (" + std::to_string(n[0].Int(0)) +
                          " have); create a new journey",
                      fixed);
  }
  NS_RETURN_IF_ERROR(
      db_.Exec("UPDATE journeys SET doc = ?, updated_at = ? WHERE id = ?", {doc.ToJson(true).dump(), NowMs(), id}));
  NS_RETURN_IF_ERROR(Audit(db_, who, "update", "journey", id, old.doc.ToJson(false), doc.ToJson(false)));
  return Get(who.project, id);
}

Status JourneyService::Delete(const Principal& who, int64_t id) {
  std::string status;
  NS_ASSIGN_OR_RETURN(Active old, LoadJourney(who.project, id, &status));
  if (status == "active") return FailedPrecondition("journey " + std::to_string(id) + " is active: pause it first");
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (const char* t : {"journey_sends", "journey_step_log", "journey_entries"})
      NS_RETURN_IF_ERROR(db_.Exec(std::string("DELETE FROM ") + t + " WHERE journey_id = ?", {id}));
    return db_.Exec("DELETE FROM journeys WHERE id = ?", {id});
  }));
  return Audit(db_, who, "delete", "journey", id, old.doc.ToJson(false), nullptr);
}

StatusOr<json> JourneyService::SetStatus(const Principal& who, int64_t id, const std::string& to) {
  std::string status;
  NS_ASSIGN_OR_RETURN(Active j, LoadJourney(who.project, id, &status));
  if (to != "active" && to != "paused") return InvalidArgument("status: expected active or paused", "status");
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(who.project));
  if (to == "active" && Now() >= EndOfLocalDate(j.doc.limits.end_date, p->tz))
    return Status(StatusCode::kFailedPrecondition, "limits.end_date: the journey's end date has passed",
                  "limits.end_date");
  if (to == "active")
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE journeys SET status = 'active', activated_at = ?, "
                 "updated_at = ? WHERE id = ?",
                 {Now(), NowMs(), id}));
  else
    NS_RETURN_IF_ERROR(db_.Exec("UPDATE journeys SET status = 'paused', updated_at = ? WHERE id = ?", {NowMs(), id}));
  NS_RETURN_IF_ERROR(Audit(db_, who, to == "active" ? "activate" : "pause", "journey", id, json{{"status", status}},
                           json{{"status", to}}));
  queue_cv_.notify_all();
  return Get(who.project, id);
}

StatusOr<json> JourneyService::Results(const std::string& project, int64_t id) {
  std::string status;
  NS_ASSIGN_OR_RETURN(Active j, LoadJourney(project, id, &status));
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  struct Person {
    bool holdout;
    int64_t entered_at, action_at;  // action_at 0: not reached
  };
  std::unordered_map<uint32_t, Person> persons;
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT person, holdout, entered_at, action_at FROM journey_entries WHERE "
                                           "journey_id = ?",
                                           {id}));
  Roaring all;
  for (auto& r : rows) {
    uint32_t person = static_cast<uint32_t>(r.Int(0));
    persons[person] = {r.Int(1) != 0, r.Int(2), r.IsNull(3) ? 0 : r.Int(3)};
    all.add(person);
  }
  // Goal events per person; a person stored before a merge is read as the person it is now.
  std::unordered_map<uint32_t, bool> converted;
  auto snap = p->store->Snapshot();
  if (!j.doc.goal.event.empty() && !persons.empty()) {
    int64_t from = INT64_MAX;
    for (auto& [_, e] : persons) from = std::min(from, e.entered_at);
    NS_ASSIGN_OR_RETURN(auto times, EventTimes(*snap, j.doc.goal.event, nullptr, from));
    for (auto& [person, e] : persons) {
      uint32_t now_person = snap->persons->PersonOf(person);
      auto it = times.find(now_person);
      int64_t start = e.action_at ? e.action_at : e.entered_at;
      converted[person] = AnyIn(it == times.end() ? nullptr : &it->second, start,
                                e.entered_at + int64_t{j.doc.goal.within_days} * kDayMs);
    }
  }
  json out{{"id", id}, {"status", status}, {"entered", persons.size()}};
  int64_t holdout = 0, conv = 0;
  for (auto& [person, e] : persons) {
    holdout += e.holdout;
    conv += converted[person];
  }
  out["treated"] = static_cast<int64_t>(persons.size()) - holdout;
  out["holdout"] = holdout;
  out["converted"] = j.doc.goal.event.empty() ? json() : json(conv);

  // Per step: the step log's outcomes and the sends' states.
  std::vector<json> steps(j.doc.steps.size());
  for (size_t i = 0; i < steps.size(); i++) {
    const JourneyStep& s = j.doc.steps[i];
    steps[i] = {{"index", i},   {"type", s.type}, {"action", s.action}, {"reached", 0}, {"treated", 0},  {"holdout", 0},
                {"passed", 0},  {"exited", 0},    {"held_out", 0},      {"queued", 0},  {"capped", 0},   {"ended", 0},
                {"pending", 0}, {"sent", 0},      {"failed", 0},        {"dead", 0},    {"converted", 0}};
  }
  NS_ASSIGN_OR_RETURN(auto log,
                      db_.Query("SELECT step, outcome, person FROM journey_step_log WHERE journey_id = ?", {id}));
  for (auto& r : log) {
    size_t step = static_cast<size_t>(r.Int(0));
    if (step >= steps.size()) continue;
    std::string outcome = r.Str(1);
    if (!steps[step].contains(outcome)) continue;
    steps[step][outcome] = steps[step][outcome].get<int64_t>() + 1;
    if (outcome == "reached") {
      uint32_t person = static_cast<uint32_t>(r.Int(2));
      auto it = persons.find(person);
      bool h = it != persons.end() && it->second.holdout;
      const char* group = h ? "holdout" : "treated";
      steps[step][group] = steps[step][group].get<int64_t>() + 1;
      if (converted[person]) steps[step]["converted"] = steps[step]["converted"].get<int64_t>() + 1;
    }
  }
  int64_t sent = 0, failed = 0, dead = 0, pending = 0;
  NS_ASSIGN_OR_RETURN(auto sends, db_.Query("SELECT step, state, COUNT(*) FROM journey_sends WHERE journey_id = ? "
                                            "GROUP BY step, state",
                                            {id}));
  for (auto& r : sends) {
    size_t step = static_cast<size_t>(r.Int(0));
    std::string st = r.Str(1) == "sending" ? "pending" : r.Str(1);
    int64_t n = r.Int(2);
    if (st == "sent") sent += n;
    if (st == "failed") failed += n;
    if (st == "dead") dead += n;
    if (st == "pending") pending += n;
    if (step < steps.size()) steps[step][st] = steps[step][st].get<int64_t>() + n;
  }
  out["sent"] = sent;
  out["failed"] = failed;
  out["dead"] = dead;
  out["pending"] = pending;
  out["steps"] = steps;
  out["goal"] =
      j.doc.goal.event.empty() ? json() : json{{"event", j.doc.goal.event}, {"within_days", j.doc.goal.within_days}};

  // Treated vs holdout among the persons who reached the first action step: both groups passed
  // the same waits and conditions, so the difference is the action's effect.
  if (j.doc.goal.event.empty()) {
    out["comparison"] = nullptr;
    return out;
  }
  stats::VariantAccumulator control_acc, treatment_acc;
  for (auto& [person, e] : persons) {
    if (!e.action_at) continue;
    (e.holdout ? control_acc : treatment_acc).Add(converted[person] ? 1.0 : 0.0);
  }
  const stats::VariantStatistics control = control_acc.Statistics("holdout");
  const stats::VariantStatistics treatment = treatment_acc.Statistics("treated");
  auto group = [](const stats::VariantStatistics& v) {
    return json{{"persons", v.n}, {"converted", v.sum}, {"rate", v.n > 0 ? json(v.sum / v.n) : json()}};
  };
  json cmp{{"population", "reached the first action step"},
           {"treated", group(treatment)},
           {"holdout", group(control)},
           {"method", "frequentist"},
           {"difference", "relative"},
           {"confidence", 0.95}};
  cmp["lift"] = nullptr;
  if (control.n >= 2 && treatment.n >= 2) {
    stats::AnalysisOptions o;
    auto a = stats::AnalyzeExperiment(stats::MetricKind::kProportion, {control, treatment}, o);
    if (!a.ok()) {
      cmp["error"] = a.status().message();
    } else if (!a->effects.empty()) {
      const stats::Effect& e = a->effects[0];
      if (e.ok)
        cmp["lift"] = {{"expected", e.expected}, {"ci", {e.ci_low, e.ci_high}}, {"p_value", e.p_value}};
      else
        cmp["error"] = e.error;
    }
  } else {
    cmp["error"] = "too few persons have reached the first action step to compare";
  }
  out["comparison"] = cmp;
  return out;
}

StatusOr<json> JourneyService::DeadLetters(const std::string& project, int64_t id, int limit) {
  NS_RETURN_IF_ERROR(LoadJourney(project, id, nullptr).status());
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT id, distinct_id, step, idempotency_key, action, attempts, http_status, last_error, created_at, "
                "started_at FROM journey_sends WHERE journey_id = ? AND state = 'dead' ORDER BY id DESC LIMIT ?",
                {id, int64_t{limit}}));
  json items = json::array();
  for (auto& r : rows)
    items.push_back({{"id", r.Int(0)},
                     {"distinct_id", r.Str(1)},
                     {"step", r.Int(2)},
                     {"idempotency_key", r.Str(3)},
                     {"action", r.Str(4)},
                     {"attempts", r.Int(5)},
                     {"http_status", r.Int(6)},
                     {"error", r.Str(7)},
                     {"created_at", FormatIsoUtc(r.Int(8))},
                     {"last_attempt_at", r.IsNull(9) ? json() : json(FormatIsoUtc(r.Int(9)))}});
  NS_ASSIGN_OR_RETURN(auto n,
                      db_.Query("SELECT COUNT(*) FROM journey_sends WHERE journey_id = ? AND state = 'dead'", {id}));
  return json{{"journey_id", id}, {"total", n[0].Int(0)}, {"items", items}};
}

StatusOr<json> JourneyService::RetryDead(const Principal& who, int64_t id, int64_t send_id) {
  NS_RETURN_IF_ERROR(LoadJourney(who.project, id, nullptr).status());
  std::string sql =
      "UPDATE journey_sends SET state = 'pending', attempts = 0, next_attempt_at = ?, last_error = '' WHERE "
      "journey_id = ? AND state = 'dead'";
  std::vector<SqlValue> args{Now(), id};
  if (send_id) {
    NS_ASSIGN_OR_RETURN(auto rows,
                        db_.Query("SELECT state FROM journey_sends WHERE id = ? AND journey_id = ?", {send_id, id}));
    if (rows.empty())
      return NotFound("send " + std::to_string(send_id) + " not found in journey " + std::to_string(id));
    NS_ASSIGN_OR_RETURN(SendState st, ParseSendState(rows[0].Str(0)));
    NS_RETURN_IF_ERROR(NextSendState(st, SendEvent::kRetry, 0, 0).status());
    sql += " AND id = ?";
    args.push_back(send_id);
  }
  NS_RETURN_IF_ERROR(db_.Exec(sql, args));
  int64_t n = db_.Changes();
  NS_RETURN_IF_ERROR(Audit(db_, who, "retry", "journey_dead_letters", id, nullptr,
                           json{{"send_id", send_id ? json(send_id) : json()}, {"retried", n}}));
  queue_cv_.notify_all();
  return json{{"retried", n}};
}

StatusOr<json> JourneyService::EvaluateTrigger(const Principal& who, int64_t id) {
  std::string status;
  NS_ASSIGN_OR_RETURN(Active j, LoadJourney(who.project, id, &status));
  if (j.doc.trigger.type == "event")
    return Status(StatusCode::kFailedPrecondition, "an event trigger is not evaluated: its events enter persons",
                  "trigger.type");
  if (status != "active") return FailedPrecondition("journey " + std::to_string(id) + " is not active");
  std::lock_guard lock(work_mu_);
  int entered = 0;
  NS_ASSIGN_OR_RETURN(auto active, LoadActive());
  NS_RETURN_IF_ERROR(RunCohortTriggers(active, true, id, &entered));
  queue_cv_.notify_all();
  return json{{"entered", entered}};
}

// ---------------------------------------------------------------- engine

StatusOr<std::vector<JourneyService::Active>> JourneyService::LoadActive() {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, project, doc, activated_at FROM journeys WHERE status = "
                                           "'active' ORDER BY id"));
  std::vector<Active> out;
  for (auto& r : rows) {
    json j = json::parse(r.Str(2), nullptr, false);
    auto doc = JourneyDoc::Parse(j);
    if (!doc.ok()) {
      spdlog::error("journey {} is malformed and skipped: {}", r.Int(0), doc.status().message());
      continue;
    }
    auto p = registry_.OpenProject(r.Str(1));
    if (!p.ok()) continue;
    // Past its end date: no more entries or sends (in-flight persons exit as "ended").
    if (Now() >= EndOfLocalDate(doc->limits.end_date, (*p)->tz)) {
      NS_RETURN_IF_ERROR(db_.Exec("UPDATE journeys SET status = 'ended' WHERE id = ?", {r.Int(0)}));
      NS_RETURN_IF_ERROR(
          db_.Exec("UPDATE journey_entries SET state = 'exited', exit_reason = 'ended' WHERE "
                   "journey_id = ? AND state = 'waiting'",
                   {r.Int(0)}));
      continue;
    }
    out.push_back({r.Int(0), r.Str(1), std::move(doc).value(), r.IsNull(3) ? 0 : r.Int(3)});
  }
  return out;
}

void JourneyService::HookProjects(const std::vector<Active>& active) {
  std::map<std::string, std::shared_ptr<TriggerIndex>> next;
  for (const Active& j : active) {
    auto& idx = next[j.project];
    if (!idx) idx = std::make_shared<TriggerIndex>();
    if (j.doc.trigger.type == "event") idx->by_event[j.doc.trigger.event].push_back(j.id);
  }
  {
    std::lock_guard lock(queue_mu_);
    triggers_.clear();
    for (auto& [project, idx] : next) triggers_[project] = idx;
  }
  for (auto& [project, idx] : next) {
    if (hooks_.count(project)) continue;
    auto p = registry_.OpenProject(project);
    if (!p.ok()) continue;
    // The hook runs on a writing thread before the writers are answered: it only matches
    // names and queues.
    struct Matcher {
      std::mutex mu;
      std::shared_ptr<const TriggerIndex> index;
      std::unordered_map<uint32_t, const std::vector<int64_t>*> by_code;
    };
    auto m = std::make_shared<Matcher>();
    const EventDict* dict = (*p)->store->Snapshot()->events;
    std::string name = project;
    hooks_[project] = (*p)->store->AddAppendListener([this, m, dict, name](const std::vector<AppendedEvent>& events) {
      std::shared_ptr<const TriggerIndex> idx;
      {
        std::lock_guard lock(queue_mu_);
        auto it = triggers_.find(name);
        if (it == triggers_.end() || it->second->by_event.empty()) return;
        idx = it->second;
      }
      std::vector<Candidate> found;
      {
        std::lock_guard lock(m->mu);
        if (m->index != idx) {
          m->index = idx;
          m->by_code.clear();
        }
        for (const AppendedEvent& e : events) {
          auto it = m->by_code.find(e.event_code);
          if (it == m->by_code.end()) {
            auto j = idx->by_event.find(dict->Name(e.event_code));
            it = m->by_code.emplace(e.event_code, j == idx->by_event.end() ? nullptr : &j->second).first;
          }
          if (!it->second) continue;
          for (int64_t journey : *it->second) found.push_back({journey, e.person, e.ts_ms});
        }
      }
      if (found.empty()) return;
      std::lock_guard lock(queue_mu_);
      queue_.insert(queue_.end(), found.begin(), found.end());
      queue_cv_.notify_all();
    });
  }
}

Status JourneyService::CatchUp(const Active& j) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
  auto snap = p->store->Snapshot();
  int64_t from = j.activated_at - int64_t{j.doc.lookback_hours} * 3'600'000;
  NS_ASSIGN_OR_RETURN(auto times, EventTimes(*snap, j.doc.trigger.event, nullptr, from));
  std::vector<std::pair<uint32_t, int64_t>> persons;
  persons.reserve(times.size());
  for (auto& [person, ts] : times) persons.push_back({person, ts.front()});
  std::sort(persons.begin(), persons.end());
  return EnterPersons(j, persons, *p, *snap);
}

Status JourneyService::EnterCandidates(const std::vector<Active>& active, std::vector<Candidate> candidates) {
  std::map<int64_t, std::map<uint32_t, int64_t>> by_journey;  // journey -> person -> earliest trigger time
  for (const Candidate& c : candidates) {
    auto [it, added] = by_journey[c.journey_id].emplace(c.person, c.ts);
    if (!added) it->second = std::min(it->second, c.ts);
  }
  for (const Active& j : active) {
    auto it = by_journey.find(j.id);
    if (it == by_journey.end()) continue;
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
    auto snap = p->store->Snapshot();
    int64_t from = j.activated_at - int64_t{j.doc.lookback_hours} * 3'600'000;
    std::vector<std::pair<uint32_t, int64_t>> persons;
    for (auto& [person, ts] : it->second)
      if (ts >= from) persons.push_back({snap->persons->PersonOf(person), ts});
    NS_RETURN_IF_ERROR(EnterPersons(j, persons, *p, *snap));
  }
  return Status::OK();
}

Status JourneyService::EnterPersons(const Active& j, const std::vector<std::pair<uint32_t, int64_t>>& persons,
                                    Project& p, const StoreSnapshot& snap) {
  if (persons.empty()) return Status::OK();
  std::shared_ptr<const Roaring> audience;
  if (j.doc.audience_cohort) {
    auto m = people_.Members(j.project, j.doc.audience_cohort, snap, p.tz);
    if (!m.ok()) {
      spdlog::warn("journey {}: audience cohort {} cannot be evaluated: {}", j.id, j.doc.audience_cohort,
                   m.status().ToString());
      return Status::OK();
    }
    audience = *m;
  }
  return db_.Tx([&]() -> Status {
    for (auto [person, ts] : persons) {
      if (snap.persons->Erased(person)) continue;
      if (audience && !audience->contains(person)) continue;
      std::string did = p.store->DistinctId(person);
      bool holdout = InHoldout(j.id, did, j.doc.holdout_percent);
      NS_RETURN_IF_ERROR(
          db_.Exec("INSERT INTO journey_entries(journey_id, person, distinct_id, holdout, entered_at, step, anchor_at, "
                   "due_at, state) VALUES(?, ?, ?, ?, ?, 0, ?, ?, 'waiting') ON CONFLICT(journey_id, person) DO "
                   "NOTHING",
                   {j.id, int64_t{person}, did, int64_t{holdout}, ts, ts, ts}));
    }
    return Status::OK();
  });
}

Status JourneyService::RunCohortTriggers(const std::vector<Active>& active, bool force, int64_t only_id, int* entered) {
  for (const Active& j : active) {
    if (j.doc.trigger.type == "event" || (force && j.id != only_id)) continue;
    NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT cohort_members, cohort_evaluated_at, last_schedule_day FROM "
                                             "journeys WHERE id = ?",
                                             {j.id}));
    if (rows.empty()) continue;
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
    int64_t now = Now();
    bool cohort = j.doc.trigger.type == "cohort";
    std::string today = p->tz.FormatLocal(now).substr(0, 10);
    if (!force) {
      if (cohort && !rows[0].IsNull(1) && now - rows[0].Int(1) < int64_t{j.doc.trigger.every_minutes} * 60'000)
        continue;
      if (!cohort) {
        std::string local = p->tz.FormatLocal(now);
        if (rows[0].Str(2) == today || local.substr(11, 5) < j.doc.trigger.at) continue;
      }
    }
    auto snap = p->store->Snapshot();
    auto members = people_.Members(j.project, j.doc.trigger.cohort, *snap, p->tz);
    if (!members.ok()) {
      spdlog::warn("journey {}: cohort {} cannot be evaluated: {}", j.id, j.doc.trigger.cohort,
                   members.status().ToString());
      continue;
    }
    Roaring fresh = **members;
    if (cohort) {
      // Entering = in the cohort now and not at the previous evaluation (the first one enters
      // today's members only with include_existing).
      bool first = rows[0].IsNull(0);
      if (first && !j.doc.trigger.include_existing)
        fresh = Roaring();
      else if (!first)
        fresh -= DecodeBitmap(rows[0].Str(0));
    }
    std::vector<std::pair<uint32_t, int64_t>> persons;
    for (uint32_t person : fresh) persons.push_back({person, now});
    NS_ASSIGN_OR_RETURN(auto before, db_.Query("SELECT COUNT(*) FROM journey_entries WHERE journey_id = ?", {j.id}));
    // The entries and the evaluation's record commit together: exactly once per evaluation.
    NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
      NS_RETURN_IF_ERROR(EnterPersons(j, persons, *p, *snap));
      if (cohort)
        return db_.Exec("UPDATE journeys SET cohort_members = ?, cohort_evaluated_at = ? WHERE id = ?",
                        {EncodeBitmap(**members), now, j.id});
      return db_.Exec("UPDATE journeys SET last_schedule_day = ? WHERE id = ?", {today, j.id});
    }));
    NS_ASSIGN_OR_RETURN(auto after, db_.Query("SELECT COUNT(*) FROM journey_entries WHERE journey_id = ?", {j.id}));
    if (entered) *entered += static_cast<int>(after[0].Int(0) - before[0].Int(0));
  }
  return Status::OK();
}

Status JourneyService::AdvanceDue(const std::vector<Active>& active) {
  std::vector<int64_t> ids;
  std::map<int64_t, const Active*> by_id;
  for (const Active& j : active) {
    ids.push_back(j.id);
    by_id[j.id] = &j;
  }
  if (ids.empty()) return Status::OK();
  const int64_t now = Now();
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT journey_id, person, distinct_id, holdout, entered_at, step, anchor_at, action_at FROM "
                "journey_entries WHERE state = 'waiting' AND due_at <= ? AND journey_id IN (" +
                    IdList(ids) + ") ORDER BY due_at LIMIT ?",
                {now, static_cast<int64_t>(options_.step_batch)}));
  if (rows.empty()) return Status::OK();
  if (rows.size() == options_.step_batch) more_work_ = true;
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < rows.size(); i++) groups[rows[i].Int(0)].push_back(i);

  return db_.Tx([&]() -> Status {
    for (auto& [jid, idx] : groups) {
      const Active& j = *by_id[jid];
      NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
      auto snap = p->store->Snapshot();
      const int64_t end = EndOfLocalDate(j.doc.limits.end_date, p->tz);
      // The events the conditions ask about, for these persons only.
      Roaring want;
      int64_t from = INT64_MAX;
      for (size_t i : idx) {
        want.add(snap->persons->PersonOf(static_cast<uint32_t>(rows[i].Int(1))));
        from = std::min(from, rows[i].Int(4));
      }
      std::map<std::string, std::unordered_map<uint32_t, std::vector<int64_t>>> cond;
      for (const JourneyStep& s : j.doc.steps)
        if (s.type == "condition" && !cond.count(s.event)) {
          NS_ASSIGN_OR_RETURN(cond[s.event], EventTimes(*snap, s.event, &want, from));
        }
      for (size_t i : idx) {
        const SqlRow& r = rows[i];
        const uint32_t person = static_cast<uint32_t>(r.Int(1));
        const uint32_t now_person = snap->persons->PersonOf(person);
        const std::string did = r.Str(2);
        const bool holdout = r.Int(3) != 0;
        const int64_t entered_at = r.Int(4);
        size_t step = static_cast<size_t>(r.Int(5));
        int64_t anchor = r.Int(6), due = now;
        int64_t action_at = r.IsNull(7) ? 0 : r.Int(7);
        std::string state = "waiting", exit_reason;
        auto log = [&](size_t s, const char* outcome) {
          return db_.Exec(
              "INSERT INTO journey_step_log(journey_id, step, outcome, person, at) VALUES(?, ?, ?, ?, ?) "
              "ON CONFLICT DO NOTHING",
              {jid, static_cast<int64_t>(s), outcome, int64_t{person}, now});
        };
        while (step < j.doc.steps.size()) {
          const JourneyStep& s = j.doc.steps[step];
          NS_RETURN_IF_ERROR(log(step, "reached"));
          if (s.type == "wait") {
            if (anchor + s.wait_ms > now) {
              due = anchor + s.wait_ms;
              break;
            }
            anchor += s.wait_ms;
            NS_RETURN_IF_ERROR(log(step, "passed"));
            step++;
            continue;
          }
          if (s.type == "condition") {
            auto it = cond[s.event].find(now_person);
            bool did_it = AnyIn(it == cond[s.event].end() ? nullptr : &it->second, entered_at, now);
            if (did_it != s.performed) {
              NS_RETURN_IF_ERROR(log(step, "exited"));
              state = "exited";
              exit_reason = "condition";
              break;
            }
            NS_RETURN_IF_ERROR(log(step, "passed"));
            step++;
            continue;
          }
          // An action.
          if (!action_at) action_at = now;
          if (now >= end) {
            NS_RETURN_IF_ERROR(log(step, "ended"));
            state = "exited";
            exit_reason = "ended";
            break;
          }
          if (holdout) {
            NS_RETURN_IF_ERROR(log(step, "held_out"));
            step++;
            continue;
          }
          if (s.IsMessage() && j.doc.limits.frequency_max > 0) {
            NS_ASSIGN_OR_RETURN(auto c, db_.Query("SELECT COUNT(*) FROM journey_sends WHERE project = ? AND person = ? "
                                                  "AND created_at >= ? AND action IN ('webhook', 'notify_owner')",
                                                  {j.project, int64_t{person},
                                                   now - int64_t{j.doc.limits.frequency_hours} * 3'600'000}));
            if (!FrequencyAllows(c[0].Int(0), j.doc.limits.frequency_max)) {
              NS_RETURN_IF_ERROR(log(step, "capped"));
              step++;
              continue;
            }
          }
          // The message is rendered now, from the person's properties at this moment, and
          // stored: every retry sends the same content under the same key.
          std::string key = IdempotencyKey(jid, person, step);
          auto lookup = [&](const std::string& name) -> std::string {
            if (name == "distinct_id") return did;
            if (name == "journey.name") return j.doc.name;
            if (name == "journey.id") return std::to_string(jid);
            if (name == "idempotency_key") return key;
            if (name.rfind("person.", 0) == 0) return PropText(snap->persons->Prop(now_person, name.substr(7)));
            return "";
          };
          // A message needs a title (ops/notify.h): the journey's name when the step has none.
          json message{{"title", s.title.empty() ? j.doc.name : RenderTemplate(s.title, lookup)},
                       {"text", RenderTemplate(s.text, lookup)}};
          if (s.action == "webhook")
            message["data"] = {{"journey_id", jid},
                               {"journey", j.doc.name},
                               {"step", step},
                               {"distinct_id", did},
                               {"idempotency_key", key},
                               {"payload", s.payload.is_null() ? json::object() : RenderJson(s.payload, lookup)}};
          NS_RETURN_IF_ERROR(db_.Exec(
              "INSERT INTO journey_sends(journey_id, project, person, distinct_id, step, idempotency_key, action, "
              "message, state, next_attempt_at, created_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?) "
              "ON CONFLICT(idempotency_key) DO NOTHING",
              {jid, j.project, int64_t{person}, did, static_cast<int64_t>(step), key, s.action, message.dump(), now,
               now}));
          NS_RETURN_IF_ERROR(log(step, "queued"));
          step++;
        }
        if (step >= j.doc.steps.size() && state == "waiting") state = "done";
        NS_RETURN_IF_ERROR(
            db_.Exec("UPDATE journey_entries SET step = ?, anchor_at = ?, due_at = ?, state = ?, exit_reason = ?, "
                     "action_at = ? WHERE journey_id = ? AND person = ?",
                     {static_cast<int64_t>(step), anchor, due, state, exit_reason,
                      action_at ? SqlValue(action_at) : SqlValue(nullptr), jid, int64_t{person}}));
      }
    }
    return Status::OK();
  });
}

Status JourneyService::DispatchSends(const std::vector<Active>& active) {
  std::vector<int64_t> ids;
  std::map<int64_t, const Active*> by_id;
  for (const Active& j : active) {
    ids.push_back(j.id);
    by_id[j.id] = &j;
  }
  if (ids.empty()) return Status::OK();
  const int64_t now = Now();
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, journey_id, project, distinct_id, step, idempotency_key, action, message, "
                                "state, attempts FROM journey_sends WHERE state IN ('pending', 'failed') AND "
                                "next_attempt_at <= ? AND journey_id IN (" +
                                    IdList(ids) + ") ORDER BY next_attempt_at, id LIMIT ?",
                                {now, static_cast<int64_t>(options_.send_batch)}));
  if (rows.empty()) return Status::OK();
  if (rows.size() == options_.send_batch) more_work_ = true;
  // Which of them may go now: quiet hours and the rate limit hold messages back.
  std::vector<size_t> go;
  std::map<int64_t, int64_t> budget;  // journey -> messages it may still start this minute
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (size_t i = 0; i < rows.size(); i++) {
      const Active& j = *by_id[rows[i].Int(1)];
      bool message = IsMessageAction(rows[i].Str(6));
      if (message) {
        NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
        int64_t release = QuietHoursRelease(now, p->tz, j.doc.limits.quiet_hours);
        if (release > now) {
          NS_RETURN_IF_ERROR(
              db_.Exec("UPDATE journey_sends SET next_attempt_at = ? WHERE id = ?", {release, rows[i].Int(0)}));
          continue;
        }
        if (j.doc.limits.rate_per_minute > 0) {
          if (!budget.count(j.id)) {
            NS_ASSIGN_OR_RETURN(auto c, db_.Query("SELECT COUNT(*) FROM journey_sends WHERE journey_id = ? AND "
                                                  "started_at >= ? AND action IN ('webhook', 'notify_owner')",
                                                  {j.id, now - 60'000}));
            budget[j.id] = RateBudget(c[0].Int(0), j.doc.limits.rate_per_minute, INT64_MAX);
          }
          if (budget[j.id] <= 0) continue;
          budget[j.id]--;
        }
      }
      NS_ASSIGN_OR_RETURN(SendState from, ParseSendState(rows[i].Str(8)));
      NS_RETURN_IF_ERROR(NextSendState(from, SendEvent::kClaim, 0, 0).status());
      // Claimed (sending) and committed before the call: a crash from here on leaves it
      // sending, and recovery sends it again under the same key.
      NS_RETURN_IF_ERROR(
          db_.Exec("UPDATE journey_sends SET state = 'sending', attempts = attempts + 1, started_at = ? "
                   "WHERE id = ? AND state IN ('pending', 'failed')",
                   {now, rows[i].Int(0)}));
      if (db_.Changes() == 1) go.push_back(i);
    }
    return Status::OK();
  }));
  if (go.empty()) return Status::OK();

  struct Outcome {
    bool ok = false;
    int http_status = 0;
    std::string error;
  };
  std::vector<Outcome> outcomes(go.size());
  auto deliver = [&](size_t k) {
    const SqlRow& r = rows[go[k]];
    const Active& j = *by_id[r.Int(1)];
    const JourneyStep& s = j.doc.steps.at(static_cast<size_t>(r.Int(4)));
    json message = json::parse(r.Str(7), nullptr, false);
    Outcome& o = outcomes[k];
    try {
      if (s.action == "webhook" || s.action == "notify_owner") {
        Notification n;
        n.title = message.value("title", "");
        n.text = message.value("text", "");
        n.data = message.value("data", json::object());
        n.dedup_key = r.Str(5);
        if (s.action == "webhook") {
          NotificationChannel ch{0, "journey " + std::to_string(j.id), "webhook", s.url, s.secret};
          RetryPolicy once;  // the engine retries, durably, with its own back-off
          once.max_attempts = 1;
          once.timeout_ms = options_.send_timeout_ms;
          DeliveryResult d = Deliver(ch, n, once);
          o.ok = d.ok;
          o.http_status = d.http_status;
          o.error = d.error;
        } else {
          // The operations outbox de-duplicates by key: a retry never sends a channel twice.
          json results = ops_.channels.SendAll(r.Str(2), s.channels, n);
          o.ok = true;
          for (auto& x : results)
            if (!x.value("ok", false)) {
              o.ok = false;
              o.error = x.value("error", std::string("delivery failed"));
            }
        }
      } else if (s.action == "set_property") {
        NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(j.project));
        Event e;
        e.uuid = Uuid::FromClientId(r.Str(5));  // the store drops a retry of the same key
        e.has_uuid = true;
        e.ts_ms = Now();
        e.distinct_id = r.Str(3);
        e.event = "$set";
        e.person_set.push_back({s.property, s.value.is_string()    ? PropValue::Str(s.value.get<std::string>())
                                            : s.value.is_boolean() ? PropValue::Json(s.value.dump())
                                                                   : PropValue::Num(s.value.get<double>())});
        auto a = p->store->Append({std::move(e)}, Durability::kWal, IdentityTrust::kSecretKey);
        o.ok = a.ok();
        if (!a.ok()) o.error = a.status().message();
      } else if (s.action == "add_to_cohort") {
        auto a = people_.AddMembers(j.project, s.cohort, json::array({r.Str(3)}).dump(), false);
        o.ok = a.ok();
        if (!a.ok()) o.error = a.status().message();
      }
    } catch (const std::exception& e) {
      o.ok = false;
      o.error = std::string("unexpected error: ") + e.what();
    }
    return Status::OK();
  };
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next.fetch_add(1)) < go.size();) (void)deliver(k);
  };
  int threads = std::max(1, std::min<int>(options_.send_threads, static_cast<int>(go.size())));
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();

  const int64_t done_at = Now();
  return db_.Tx([&]() -> Status {
    for (size_t k = 0; k < go.size(); k++) {
      const SqlRow& r = rows[go[k]];
      const Active& j = *by_id[r.Int(1)];
      int attempts = static_cast<int>(r.Int(9)) + 1;
      const Outcome& o = outcomes[k];
      NS_ASSIGN_OR_RETURN(SendState to,
                          NextSendState(SendState::kSending, o.ok ? SendEvent::kDelivered : SendEvent::kAttemptFailed,
                                        attempts, j.doc.delivery.max_attempts));
      if (to == SendState::kSent) {
        NS_RETURN_IF_ERROR(
            db_.Exec("UPDATE journey_sends SET state = 'sent', sent_at = ?, http_status = ?, "
                     "last_error = '' WHERE id = ?",
                     {done_at, int64_t{o.http_status}, r.Int(0)}));
      } else {
        if (to == SendState::kDead)
          spdlog::warn("journey {}: send {} is a dead letter after {} attempts: {}", j.id, r.Int(0), attempts,
                       LogSafe(o.error));
        NS_RETURN_IF_ERROR(
            db_.Exec("UPDATE journey_sends SET state = ?, next_attempt_at = ?, http_status = ?, "
                     "last_error = ? WHERE id = ?",
                     {SendStateName(to), done_at + RetryDelayMs(attempts, j.doc.delivery.backoff_seconds),
                      int64_t{o.http_status}, TruncateUtf8Bytes(o.error, 500), r.Int(0)}));
      }
    }
    return Status::OK();
  });
}

Status JourneyService::RunOnce() {
  std::lock_guard lock(work_mu_);
  more_work_ = false;
  NS_ASSIGN_OR_RETURN(auto active, LoadActive());
  HookProjects(active);
  // A journey's first round since start (or activation): its trigger events stored while no
  // hook was listening (before activation within the lookback, or queued in memory when the
  // process died) are found by a scan; entries are keyed by (journey, person), so a person
  // already in is not entered twice.
  for (const Active& j : active)
    if (j.doc.trigger.type == "event" && !caught_up_.count({j.id, j.activated_at})) {
      NS_RETURN_IF_ERROR(CatchUp(j));
      caught_up_.insert({j.id, j.activated_at});
    }
  std::vector<Candidate> queued;
  {
    std::lock_guard q(queue_mu_);
    queued.swap(queue_);
  }
  NS_RETURN_IF_ERROR(EnterCandidates(active, std::move(queued)));
  NS_RETURN_IF_ERROR(RunCohortTriggers(active, false, 0, nullptr));
  NS_RETURN_IF_ERROR(AdvanceDue(active));
  return DispatchSends(active);
}

void JourneyService::Start() {
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "ns-journeys");
    for (;;) {
      {
        std::unique_lock lock(queue_mu_);
        if (stop_) break;
      }
      // Exception boundary: a failing round is logged; the next one tries again.
      try {
        Status st = RunOnce();
        if (!st.ok()) spdlog::warn("journeys: {}", st.ToString());
      } catch (const std::exception& e) {
        spdlog::error("journeys: unexpected error: {}", e.what());
      }
      bool more;
      {
        std::lock_guard w(work_mu_);
        more = more_work_;
      }
      std::unique_lock lock(queue_mu_);
      if (!more)
        queue_cv_.wait_for(lock, std::chrono::milliseconds(options_.tick_ms),
                           [this] { return stop_ || !queue_.empty(); });
    }
  });
}

void JourneyService::Stop() {
  {
    std::lock_guard lock(queue_mu_);
    stop_ = true;
  }
  queue_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& [project, id] : hooks_) {
    auto p = registry_.OpenProject(project);
    if (p.ok()) (*p)->store->RemoveAppendListener(id);
  }
  hooks_.clear();
}

}  // namespace ns
