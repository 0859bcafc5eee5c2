#include "flags/flags_service.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>

#include "auth/accounts.h"
#include "core/time_zone.h"
#include "storage/person_table.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& FlagMigrations() {
  static const std::vector<Migration> m = {
      {1, "feature flags", R"SQL(
CREATE TABLE feature_flags(
  id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, key TEXT NOT NULL,
  definition TEXT NOT NULL, version INTEGER NOT NULL DEFAULT 1,
  created_by TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE UNIQUE INDEX feature_flags_key ON feature_flags(project, key);
)SQL"},
  };
  return m;
}

namespace {

json PropJson(const PropValue& v) {
  switch (v.kind) {
    case PropValue::kNum: return v.num;
    case PropValue::kStr: return v.str;
    case PropValue::kJson: {
      json j = json::parse(v.str, nullptr, /*allow_exceptions=*/false);
      return j.is_discarded() ? json(v.str) : j;
    }
  }
  return v.str;
}

std::string Sha1Hex(const std::string& text) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), md, &len, EVP_sha1(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; i++) out += kHex[md[i] >> 4], out += kHex[md[i] & 15];
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<FlagsService>> FlagsService::Open(ProjectRegistry& registry, PeopleService* people) {
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("flags", FlagMigrations()));
  std::unique_ptr<FlagsService> s(new FlagsService(registry, people));
  if (people != nullptr) {
    // A cohort a flag's conditions name cannot be deleted (a 409 naming the flags).
    FlagsService* self = s.get();
    people->AddReferrers([self](const std::string& project, int64_t id) -> StatusOr<std::vector<std::string>> {
      NS_ASSIGN_OR_RETURN(auto rows, self->LoadAll(project));
      std::vector<std::string> names;
      for (const FlagRow& row : rows) {
        bool uses = false;
        for (const FlagGroup& g : row.def.groups)
          for (const FlagCondition& c : g.properties) uses |= c.type == "cohort" && c.value == json(id);
        if (uses) names.push_back("feature flag '" + row.def.key + "'");
      }
      return names;
    });
  }
  return s;
}

// ---------------------------------------------------------------- definitions

namespace {

// The columns every load reads, in this order.
constexpr const char* kFlagColumns = "id, definition, version, created_by, created_at, updated_at";

}  // namespace

StatusOr<FlagsService::FlagRow> FlagsService::RowOf(const SqlRow& r) {
  FlagRow row;
  row.id = r.Int(0);
  json def = json::parse(r.Str(1), nullptr, /*allow_exceptions=*/false);
  if (def.is_discarded())
    return Corruption("feature_flags.definition of row " + std::to_string(row.id) + " is not JSON");
  auto parsed = ParseFlagDefinition(def);
  if (!parsed.ok())
    return Corruption("feature_flags.definition of row " + std::to_string(row.id) +
                      " does not read back: " + parsed.status().message());
  row.def = std::move(parsed).value();
  row.version = r.Int(2);
  row.created_by = r.Str(3);
  row.created_at = r.Int(4);
  row.updated_at = r.Int(5);
  return row;
}

StatusOr<FlagsService::FlagRow> FlagsService::Load(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(
      auto rows, db_.Query(std::string("SELECT ") + kFlagColumns + " FROM feature_flags WHERE id = ? AND project = ?",
                           {id, project}));
  if (rows.empty()) return NotFound("no feature flag " + std::to_string(id));
  return RowOf(rows[0]);
}

StatusOr<std::vector<FlagsService::FlagRow>> FlagsService::LoadAll(const std::string& project) {
  NS_ASSIGN_OR_RETURN(
      auto rows, db_.Query(std::string("SELECT ") + kFlagColumns + " FROM feature_flags WHERE project = ? ORDER BY key",
                           {project}));
  std::vector<FlagRow> out;
  for (const SqlRow& r : rows) {
    NS_ASSIGN_OR_RETURN(FlagRow row, RowOf(r));
    out.push_back(std::move(row));
  }
  return out;
}

json FlagsService::RowJson(const FlagRow& row) {
  json j = FlagDefinitionJson(row.def);
  j["id"] = row.id;
  j["version"] = row.version;
  j["created_by"] = row.created_by;
  j["created_at"] = FormatIsoUtc(row.created_at);
  j["updated_at"] = FormatIsoUtc(row.updated_at);
  return j;
}

Status FlagsService::CheckUniqueKey(const std::string& project, const std::string& key, int64_t except_id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM feature_flags WHERE project = ? AND key = ? AND id <> ?",
                                           {project, key, except_id}));
  if (!rows.empty())
    return AlreadyExists("key: the project already has a flag '" + key + "' (id " + std::to_string(rows[0].Int(0)) +
                         ")");
  return Status::OK();
}

StatusOr<json> FlagsService::Create(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(FlagDefinition def, ParseFlagDefinition(body));
  int64_t id = 0;
  const int64_t now = NowMs();
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(CheckUniqueKey(who.project, def.key, 0));
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO feature_flags(project, key, definition, version, created_by, "
                                       "created_at, updated_at) VALUES(?, ?, ?, 1, ?, ?, ?)",
                                       {who.project, def.key, FlagDefinitionJson(def).dump(), who.actor, now, now}));
    return Audit(db_, who, "create", "feature_flag", id, nullptr, FlagDefinitionJson(def));
  }));
  NS_ASSIGN_OR_RETURN(FlagRow row, Load(who.project, id));
  return RowJson(row);
}

StatusOr<json> FlagsService::Get(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(FlagRow row, Load(project, id));
  return RowJson(row);
}

StatusOr<json> FlagsService::List(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows, LoadAll(project));
  json out = json::array();
  for (const FlagRow& r : rows) out.push_back(RowJson(r));
  return json{{"flags", out}};
}

StatusOr<json> FlagsService::Update(const Principal& who, int64_t id, const json& patch) {
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(FlagRow row, Load(who.project, id));
    NS_ASSIGN_OR_RETURN(FlagDefinition def, PatchFlagDefinition(row.def, patch));
    NS_RETURN_IF_ERROR(CheckUniqueKey(who.project, def.key, id));
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE feature_flags SET key = ?, definition = ?, version = version + 1, "
                 "updated_at = ? WHERE id = ?",
                 {def.key, FlagDefinitionJson(def).dump(), NowMs(), id}));
    return Audit(db_, who, "update", "feature_flag", id, FlagDefinitionJson(row.def), FlagDefinitionJson(def));
  }));
  NS_ASSIGN_OR_RETURN(FlagRow row, Load(who.project, id));
  return RowJson(row);
}

Status FlagsService::Delete(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(FlagRow row, Load(who.project, id));
    std::vector<std::string> users;
    for (const FlagReferrers& r : referrers_) {
      NS_ASSIGN_OR_RETURN(std::vector<std::string> names, r(who.project, row.def.key));
      users.insert(users.end(), names.begin(), names.end());
    }
    if (!users.empty()) {
      std::string list;
      for (const std::string& u : users) list += (list.empty() ? "" : ", ") + u;
      return FailedPrecondition("feature flag '" + row.def.key + "' is used by " + list +
                                ": stop using it there first (an experiment reads its exposures)");
    }
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM feature_flags WHERE id = ?", {id}));
    return Audit(db_, who, "delete", "feature_flag", id, FlagDefinitionJson(row.def), nullptr);
  });
}

// ---------------------------------------------------------------- evaluation

StatusOr<FlagEvaluation> FlagsService::Evaluate(const std::string& project, const FlagEvalRequest& req) {
  if (req.distinct_id.empty()) return InvalidArgument("distinct_id: required field is missing", "distinct_id");
  if (req.distinct_id.size() > 200) return InvalidArgument("distinct_id: at most 200 bytes", "distinct_id");
  if (!req.person_properties.is_object())
    return InvalidArgument("person_properties: expected an object", "person_properties");
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(auto rows, LoadAll(project));

  // The person, as of one snapshot: its properties and its cohorts are read from it.
  std::shared_ptr<const StoreSnapshot> snap = p->store->Snapshot();
  const PersonTable& persons = *snap->persons;
  int64_t did = p->store->FindDistinctId(req.distinct_id);
  if (did >= 0 && persons.Erased(static_cast<uint32_t>(did))) did = -1;
  const bool known = did >= 0 && static_cast<size_t>(did) < persons.size();
  const uint32_t person = known ? persons.PersonOf(static_cast<uint32_t>(did)) : 0;
  FlagEvaluation out;
  out.hashed_id = req.distinct_id;
  if (did >= 0) {
    std::string first = p->store->FirstIdentifiedId(static_cast<uint32_t>(did));
    if (!first.empty()) out.hashed_id = first;
  }
  FlagPropertyLookup props = [&](const std::string& key) -> std::optional<json> {
    if (auto it = req.person_properties.find(key); it != req.person_properties.end()) return *it;
    if (!known) return std::nullopt;
    const PropValue* v = persons.Prop(person, key);
    if (v == nullptr) return std::nullopt;
    return PropJson(*v);
  };
  std::map<int64_t, bool> member_of;
  FlagCohortLookup cohorts = [&](int64_t id) -> StatusOr<bool> {
    if (auto it = member_of.find(id); it != member_of.end()) return it->second;
    if (people_ == nullptr) return FailedPrecondition("cohorts are not available");
    NS_ASSIGN_OR_RETURN(auto members, people_->Members(project, id, *snap, p->tz));
    const bool in = known && members->contains(person);
    member_of[id] = in;
    return in;
  };

  for (const FlagRow& row : rows) {
    if (!req.keys.empty() && std::find(req.keys.begin(), req.keys.end(), row.def.key) == req.keys.end()) continue;
    if (!row.def.active && !req.include_inactive) continue;
    auto outcome = EvaluateFlag(row.def, out.hashed_id, props, cohorts);
    if (!outcome.ok()) {
      out.errors = true;  // e.g. a cohort deleted since: PostHog leaves the flag out too
      continue;
    }
    out.flags.push_back(EvaluatedFlag{row.id, row.version, row.def.key, row.def.description, std::move(*outcome)});
  }
  return out;
}

StatusOr<size_t> FlagsService::RecordExposures(const std::string& project, const std::string& distinct_id,
                                               const FlagEvaluation& evaluation) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int64_t now = NowMs();
  const int32_t day = p->tz.LocalDay(now);
  std::vector<Event> events;
  for (const EvaluatedFlag& f : evaluation.flags) {
    if (f.outcome.reason == "disabled") continue;
    const json response = !f.outcome.enabled          ? json(false)
                          : f.outcome.variant.empty() ? json(true)
                                                      : json(f.outcome.variant);
    Event e;
    e.distinct_id = distinct_id;
    e.event = "$feature_flag_called";
    e.ts_ms = now;
    // The same uuid for the same (person, flag, answer, day): the store keeps the first.
    e.uuid = Uuid::FromClientId(Sha1Hex("exposure\n" + evaluation.hashed_id + "\n" + f.key + "\n" + response.dump() +
                                        "\n" + std::to_string(day)));
    e.has_uuid = true;
    auto as_prop = [](const json& v) {
      return v.is_string() ? PropValue::Str(v.get<std::string>()) : PropValue::Json(v.dump());
    };
    e.props.push_back({"$feature_flag", PropValue::Str(f.key)});
    e.props.push_back({"$feature_flag_response", as_prop(response)});
    e.props.push_back({"$feature/" + f.key, as_prop(response)});
    e.props.push_back({"$feature_flag_reason", PropValue::Str(f.outcome.Description())});
    e.props.push_back({"$feature_flag_version", PropValue::Num(static_cast<double>(f.version))});
    events.push_back(std::move(e));
  }
  if (events.empty()) return size_t{0};
  NS_ASSIGN_OR_RETURN(AppendResult r, p->store->Append(std::move(events), Durability::kWal, IdentityTrust::kWriteKey));
  return r.accepted;
}

}  // namespace ns
