// Every document the operations layer stores as JSON text in meta.db (ops/schema.cc), one
// struct each. A stored document is read once, through ParseStored<T>: the text is parsed and
// T::Parse checks every field the code reads, so the read sites use typed fields and cannot
// meet a JSON exception; a malformed document is Corruption naming the table, the column and
// the row ("kpis.doc of row 12 is malformed: reduce: expected an object").
//
// Round trip: for a document the validators wrote, T::Parse(j).ToJson() == j, so answers built
// from the structs are byte-for-byte those built from the stored JSON. Hence the rule for the
// member types: a field Northstar reads or writes itself is typed; client content it only
// validates on write and echoes (a goal, a query, a funnel, resources, a number whose
// spelling 100 or 100.0 the answer keeps) stays nlohmann::json, with the shape the code relies
// on checked by Parse.
//
// Not here: notification channels, deliveries, KPI snapshot numbers, settings and job runs
// are plain columns; the audit log's before/after snapshots belong to auth/ (Audit).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "meta/meta_db.h"
#include "ops/notify.h"

namespace ns {

inline constexpr const char* kScenarioStatuses[] = {"draft", "active", "paused", "done", "cancelled"};
inline constexpr const char* kActionStatuses[] = {"not_started", "in_progress", "done", "delayed", "cancelled"};
inline constexpr const char* kAlertRuleTypes[] = {"below_target", "change", "anomaly"};

// scenarios.doc: template 1, "scenario requirements" (written by ValidateScenario).
struct ScenarioDoc {
  static constexpr const char* kTable = "scenarios";
  static constexpr const char* kColumn = "doc";
  std::string name;
  std::string business_module;
  std::string owner;
  std::string status;                      // one of kScenarioStatuses
  nlohmann::json key_user_group;           // a description, or {"cohort_id"|"description"}
  nlohmann::json pain_points;              // a text or a list of texts
  nlohmann::json goal;                     // {"metric","target","kpi_id",...} or a description
  nlohmann::json success_criteria;         // 0 to 3 texts or {"metric","target"}
  nlohmann::json period;                   // null or {"from","to"} (dates; other keys as sent)
  nlohmann::json funnel;                   // null or a funnel query
  std::optional<nlohmann::json> from_sop;  // the SOP it started from (a PATCH may set any value)

  // The period's first and last day; nullopt without a period.
  std::optional<int32_t> FirstDay() const;
  std::optional<int32_t> LastDay() const;

  static StatusOr<ScenarioDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// actions.doc: template 2, "process design" (written by ValidateAction).
struct ActionDoc {
  static constexpr const char* kTable = "actions";
  static constexpr const char* kColumn = "doc";
  std::string action;
  std::string strategy;
  std::string owner;
  std::string delivery_standard;
  std::optional<std::string> start_date;  // YYYY-MM-DD, null when not planned
  std::optional<std::string> due_date;
  std::string status;               // one of kActionStatuses
  std::vector<int64_t> depends_on;  // actions of the same scenario (a DAG)
  nlohmann::json resources;         // {"budget","currency","engineer_days","channels","note"} as sent
  nlohmann::json progress;          // [{"date","note"}, ...] as sent

  static StatusOr<ActionDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// kpis.doc: template 3, a KPI's definition (written by ValidateKpi).
struct KpiDoc {
  static constexpr const char* kTable = "kpis";
  static constexpr const char* kColumn = "doc";
  std::string name;
  std::string owner;
  std::string reason;
  std::string description;
  std::string unit;
  std::optional<int64_t> scenario_id;
  bool higher_is_better = true;         // "direction": "higher" | "lower"
  nlohmann::json target;                // null or a number as sent
  nlohmann::json thresholds;            // {"green","yellow"}: achievement rates (LightFor)
  std::vector<std::string> dimensions;  // breakdowns tried for root causes
  nlohmann::json period;                // {"type":"day|week|month|quarter|custom","from","to"}
  nlohmann::json reduce;                // the reducer's parameters, or {"formula":"k1 / k2"}
  nlohmann::json query;                 // the saved query ({"kind",...}); null for a formula

  bool IsFormula() const { return reduce.contains("formula"); }
  // reduce.formula; only for IsFormula().
  const std::string& Formula() const { return reduce["formula"].get_ref<const std::string&>(); }
  std::string QueryKind() const { return query.is_object() ? query.value("kind", "") : ""; }

  static StatusOr<KpiDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// One day of a KPI state's "daily" list.
struct KpiDailyValue {
  std::string date;
  std::optional<double> value;   // null: no value that day
  std::optional<double> weight;  // the rate's denominator, for weighted means
};

// kpis.state: a KPI's latest computed state (Kpis::Refresh), whose fields GET /kpis/{id}
// shows; or, when the daily job's refresh failed, that error.
struct KpiState {
  static constexpr const char* kTable = "kpis";
  static constexpr const char* kColumn = "state";
  struct Error {
    std::string code;
    std::string message;
  };
  std::optional<Error> error;  // set: the error form; the computed fields below are then unused
  std::string period_from, period_to;
  std::string as_of;                             // the last day counted
  std::optional<std::string> status;             // "not_started" before the period begins
  std::optional<std::string> value_through;      // an average's last complete day
  std::optional<double> actual;                  // null: no value yet
  std::optional<double> numerator, denominator;  // ratio KPIs
  nlohmann::json target;                         // the definition's
  bool higher_is_better = true;
  std::optional<double> achievement_rate;
  std::optional<std::string> light;  // green | yellow | red; null without a target
  std::vector<KpiDailyValue> daily;
  nlohmann::json forecast;  // null, ForecastPeriodEnd's answer, or {"error"}
  int64_t refreshed_at = 0;
  std::optional<std::string> auto_reason;  // the alert engine's latest hint (both forms)

  static StatusOr<KpiState> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// kpi_snapshots.detail: what a snapshot keeps beyond its columns (written, read by no answer yet).
struct KpiSnapshotDetail {
  static constexpr const char* kTable = "kpi_snapshots";
  static constexpr const char* kColumn = "detail";
  nlohmann::json forecast;
  std::optional<double> numerator, denominator;

  static StatusOr<KpiSnapshotDetail> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// alert_rules.doc (written by Alerts::CreateRule).
struct AlertRuleDoc {
  static constexpr const char* kTable = "alert_rules";
  static constexpr const char* kColumn = "doc";
  int64_t kpi_id = 0;
  std::string type;              // one of kAlertRuleTypes
  nlohmann::json threshold_pct;  // a number as sent: % below target, or % change
  nlohmann::json threshold;      // a number as sent: the anomaly's robust z-score
  std::string compare;           // dod | wow
  std::vector<int64_t> channels;
  int64_t cooldown_minutes = 0;
  nlohmann::json name;  // as sent (CreateRule does not check its type)

  static StatusOr<AlertRuleDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// alerts.detail: why an alert fired (Alerts::EvaluateKpi).
struct AlertDetail {
  static constexpr const char* kTable = "alerts";
  static constexpr const char* kColumn = "detail";
  std::string type;  // the rule's
  std::string kpi_name;
  nlohmann::json facts;  // the numbers compared, by type
  // Alerts::RootCause's answer ({} without one); Parse checks the "top_contributors" and
  // "step" that evaluations read.
  nlohmann::json root_cause;

  static StatusOr<AlertDetail> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// evaluations.doc: template 4, "effect evaluation" (a draft, then the owner's fields).
struct EvaluationDoc {
  static constexpr const char* kTable = "evaluations";
  static constexpr const char* kColumn = "doc";
  int64_t scenario_id = 0;
  std::string scenario;  // its name when drafted
  nlohmann::json period;
  std::string owner;
  nlohmann::json kpis;            // target vs result per KPI (kept as finished when final)
  nlohmann::json actions;         // {"total","done","late","cancelled","open","late_actions"}
  nlohmann::json biggest_movers;  // from the scenario's alerts
  std::string what_worked, problems, next_measures;
  std::string status;  // draft | final

  static StatusOr<EvaluationDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// One action of an SOP: content and timing relative to the scenario's start.
struct SopAction {
  std::string strategy, action, owner, delivery_standard;
  nlohmann::json resources;
  std::optional<int32_t> start_offset_days, due_offset_days;
  std::vector<size_t> depends_on_index;  // positions in the SOP's action list
};

// sops.doc: a finished scenario saved as a template (Evaluations::SaveAsSop).
struct SopDoc {
  static constexpr const char* kTable = "sops";
  static constexpr const char* kColumn = "doc";
  std::string name;
  nlohmann::json scenario;  // the scenario's template fields (business_module, goal, funnel...)
  std::vector<SopAction> actions;
  int64_t source_scenario_id = 0;
  std::string what_worked, problems, next_measures;  // "lessons"
  nlohmann::json results;                            // the evaluation's KPI results

  static StatusOr<SopDoc> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// outbox.message: a notification waiting to be sent (Channels::Enqueue).
struct OutboxMessage {
  static constexpr const char* kTable = "outbox";
  static constexpr const char* kColumn = "message";
  Notification notification;

  static StatusOr<OutboxMessage> Parse(const nlohmann::json& j);
  nlohmann::json ToJson() const;
};

// Corruption: "<table>.<column> of row <id> is malformed: <what>".
Status MalformedDocument(const char* table, const char* column, int64_t row_id, const std::string& what);

// The stored text of row `row_id` as a T; Corruption naming the table, column and row if it
// is not JSON or not a valid T.
template <typename T>
StatusOr<T> ParseStored(int64_t row_id, const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  } catch (const nlohmann::json::exception& e) {  // what allow_exceptions does not cover
    return MalformedDocument(T::kTable, T::kColumn, row_id, e.what());
  }
  if (j.is_discarded()) return MalformedDocument(T::kTable, T::kColumn, row_id, "not JSON");
  StatusOr<T> t = T::Parse(j);
  if (!t.ok()) return MalformedDocument(T::kTable, T::kColumn, row_id, t.status().message());
  return t;
}

// A document a validator built as JSON, as a T: Internal if T::Parse refuses it (the two
// disagree), so that nothing is written that would not read back.
template <typename T>
StatusOr<T> FromValidated(const nlohmann::json& doc) {
  StatusOr<T> t = T::Parse(doc);
  if (!t.ok())
    return Internal(std::string(T::kTable) + "." + T::kColumn + " would not read back: " + t.status().message());
  return t;
}

// The text to store for such a document.
template <typename T>
StatusOr<std::string> StoredText(const nlohmann::json& doc) {
  NS_ASSIGN_OR_RETURN(T t, FromValidated<T>(doc));
  return t.ToJson().dump();
}

// [{...document, "id", "created_at"}, ...] from rows (id, doc, created_at): the list answers.
template <typename T>
StatusOr<nlohmann::json> DocList(const std::vector<SqlRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    NS_ASSIGN_OR_RETURN(T doc, ParseStored<T>(r.Int(0), r.Str(1)));
    nlohmann::json d = doc.ToJson();
    d["id"] = r.Int(0);
    d["created_at"] = r.Int(2);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace ns
