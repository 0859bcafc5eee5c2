#include "ops/alerts.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>

#include <spdlog/spdlog.h>

#include "core/time_zone.h"
#include "meta/project_registry.h"
#include "ops/documents.h"

namespace ns {

using nlohmann::json;

std::string SignedPercent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%.0f%%", x < 0 ? "\u2212" : "+", std::fabs(x) * 100);
  return buf;
}

namespace {

std::string FormatValue(double v, bool ratio) {
  char buf[64];
  if (ratio)
    std::snprintf(buf, sizeof buf, "%.1f%%", v * 100);
  else if (std::fabs(v) >= 1e6)
    std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (std::fabs(v) >= 1e4)
    std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

bool IsRatioKpi(const KpiDoc& doc) {
  const json& r = doc.reduce;
  return r.contains("from_step") || r.contains("period");  // conversion rates, shown as percentages
}

}  // namespace

// ---------------------------------------------------------------- channels

// A channel URL as shown after creation: scheme and host, then only the last 4 characters of
// the rest. Slack, WeCom, Feishu and DingTalk URLs carry their token in the path or query, so
// the URL is a secret (finding 9 of docs/reliability.md); the audit log holds the masked form.
std::string MaskChannelUrl(const std::string& url) {
  size_t scheme = url.find("://");
  size_t host_start = scheme == std::string::npos ? 0 : scheme + 3;
  size_t host_end = url.find_first_of("/?#", host_start);
  if (host_end == std::string::npos) return url;
  std::string rest = url.substr(host_end);
  if (rest.size() <= 1) return url;
  return url.substr(0, host_end) + "/\u2026" + (rest.size() > 12 ? rest.substr(rest.size() - 4) : "");
}

StatusOr<int64_t> Channels::Create(const Principal& who, const json& body) {
  if (!body.is_object()) return InvalidArgument("expected {\"name\",\"kind\",\"url\",\"secret\"}");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "name" && it.key() != "kind" && it.key() != "url" && it.key() != "secret")
      return InvalidArgument("unknown field '" + it.key() + "' (known: name, kind, url, secret)", it.key());
  NotificationChannel ch;
  for (const char* f : {"kind", "url"})
    if (!body.contains(f) || !body[f].is_string()) return InvalidArgument(std::string(f) + ": required string", f);
  ch.kind = body["kind"].get<std::string>();
  ch.url = body["url"].get<std::string>();
  ch.name = body.value("name", ch.kind);
  if (body.contains("secret") && !body["secret"].is_string())
    return InvalidArgument("secret: expected a string", "secret");
  ch.secret = body.value("secret", "");
  NS_RETURN_IF_ERROR(ValidateChannel(ch));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(
        id,
        db_.Insert(
            "INSERT INTO notification_channels(project, name, kind, url, secret, created_at) VALUES(?, ?, ?, ?, ?, ?)",
            {who.project, ch.name, ch.kind, ch.url, ch.secret, NowMs()}));
    // The audit log never holds the secret.
    return Audit(
        db_, who, "create", "notification_channel", id, nullptr,
        json{
            {"name", ch.name}, {"kind", ch.kind}, {"url", MaskChannelUrl(ch.url)}, {"secret_set", !ch.secret.empty()}});
  }));
  return id;
}

StatusOr<json> Channels::List(const std::string& project) {
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query(
          "SELECT id, name, kind, url, secret, created_at FROM notification_channels WHERE project = ? ORDER BY id",
          {project}));
  json out = json::array();
  for (auto& r : rows)
    out.push_back({{"id", r.Int(0)},
                   {"name", r.Str(1)},
                   {"kind", r.Str(2)},
                   {"url", MaskChannelUrl(r.Str(3))},
                   {"secret_set", !r.Str(4).empty()},
                   {"created_at", r.Int(5)}});
  return out;
}

Status Channels::Delete(const Principal& who, int64_t id) {
  NS_RETURN_IF_ERROR(Load(who.project, id).status());
  NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM notification_channels WHERE id = ?", {id}));
  return Audit(db_, who, "delete", "notification_channel", id, json{{"id", id}}, nullptr);
}

StatusOr<NotificationChannel> Channels::Load(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(
      auto rows, db_.Query("SELECT id, name, kind, url, secret FROM notification_channels WHERE id = ? AND project = ?",
                           {id, project}));
  if (rows.empty()) return NotFound("no notification channel " + std::to_string(id));
  return NotificationChannel{rows[0].Int(0), rows[0].Str(1), rows[0].Str(2), rows[0].Str(3), rows[0].Str(4)};
}

DeliveryResult Channels::Send(const NotificationChannel& ch, const Notification& n) {
  DeliveryResult r = Deliver(ch, n, retry);
  (void)db_.Exec(
      "INSERT INTO deliveries(channel_id, at, subject, ok, attempts, http_status, error) VALUES(?, ?, ?, ?, ?, ?, ?)",
      {ch.id, NowMs(), n.title, int64_t{r.ok ? 1 : 0}, int64_t{r.attempts}, int64_t{r.http_status}, r.error});
  return r;
}

StatusOr<Channels::Enqueued> Channels::Enqueue(const std::string& project, const std::vector<int64_t>& ids_in,
                                               Notification n) {
  Enqueued out;
  if (n.dedup_key.empty()) n.dedup_key = RandomToken("msg-", 24);  // no natural key: never a duplicate
  out.dedup_key = n.dedup_key;
  std::vector<int64_t> ids = ids_in;
  if (ids.empty()) {
    NS_ASSIGN_OR_RETURN(auto rows,
                        db_.Query("SELECT id FROM notification_channels WHERE project = ? ORDER BY id", {project}));
    for (auto& r : rows) ids.push_back(r.Int(0));
  }
  const std::string message = OutboxMessage{n}.ToJson().dump();
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (int64_t id : ids) {
      if (auto ch = Load(project, id); !ch.ok()) {
        out.unknown_channels.push_back({{"channel_id", id}, {"ok", false}, {"error", ch.status().message()}});
        continue;
      }
      NS_RETURN_IF_ERROR(
          db_.Exec("INSERT INTO outbox(project, channel_id, dedup_key, message, state, created_at) "
                   "VALUES(?, ?, ?, ?, 'pending', ?) ON CONFLICT(channel_id, dedup_key) DO NOTHING",
                   {project, id, n.dedup_key, message, NowMs()}));
    }
    return Status::OK();
  }));
  return out;
}

json Channels::DeliverPending(const std::string& dedup_key) {
  json out = json::array();
  auto rows =
      dedup_key.empty()
          ? db_.Query(
                "SELECT o.id, o.project, o.channel_id, o.message FROM outbox o WHERE o.state = 'pending' ORDER BY o.id")
          : db_.Query(
                "SELECT o.id, o.project, o.channel_id, o.message FROM outbox o "
                "WHERE o.state = 'pending' AND o.dedup_key = ? ORDER BY o.id",
                {dedup_key});
  if (!rows.ok()) {
    spdlog::error("outbox: {}", rows.status().ToString());
    return out;
  }
  for (auto& r : *rows) {
    const int64_t row_id = r.Int(0), channel_id = r.Int(2);
    auto ch = Load(r.Str(1), channel_id);
    auto msg = ParseStored<OutboxMessage>(row_id, r.Str(3));
    if (!ch.ok() || !msg.ok()) {
      // Never sendable: failed, with the reason (a malformed message names its row).
      const Status& why = ch.ok() ? msg.status() : ch.status();
      if (!msg.ok()) spdlog::error("outbox: {}", why.ToString());
      (void)db_.Exec("UPDATE outbox SET state = 'failed', done_at = ? WHERE id = ?", {NowMs(), row_id});
      out.push_back({{"channel_id", channel_id}, {"ok", false}, {"error", why.message()}});
      continue;
    }
    DeliveryResult d = Send(*ch, msg->notification);
    // Done either way: a failure was already retried by Deliver and is in the delivery log.
    (void)db_.Exec("UPDATE outbox SET state = ?, done_at = ? WHERE id = ?",
                   {std::string(d.ok ? "sent" : "failed"), NowMs(), row_id});
    out.push_back({{"channel_id", channel_id},
                   {"ok", d.ok},
                   {"attempts", d.attempts},
                   {"http_status", d.http_status},
                   {"error", d.error}});
  }
  return out;
}

json Channels::SendAll(const std::string& project, const std::vector<int64_t>& ids, const Notification& n) {
  auto q = Enqueue(project, ids, n);
  if (!q.ok()) return json::array({{{"ok", false}, {"error", q.status().message()}}});
  json out = q->unknown_channels;
  std::set<int64_t> delivered;
  for (auto& d : DeliverPending(q->dedup_key)) {
    delivered.insert(d.value("channel_id", int64_t{0}));
    out.push_back(d);
  }
  // Channels that had this key already: sent before (a re-run), not again.
  auto done =
      db_.Query("SELECT channel_id, state FROM outbox WHERE dedup_key = ? AND project = ?", {q->dedup_key, project});
  if (done.ok())
    for (auto& r : *done)
      if (!delivered.count(r.Int(0)))
        out.push_back({{"channel_id", r.Int(0)}, {"ok", r.Str(1) == "sent"}, {"duplicate", true}});
  return out;
}

StatusOr<json> Channels::Deliveries(const std::string& project, int limit) {
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT d.id, d.channel_id, c.name, d.at, d.subject, d.ok, d.attempts, d.http_status, d.error "
                "FROM deliveries d JOIN notification_channels c ON c.id = d.channel_id "
                "WHERE c.project = ? ORDER BY d.id DESC LIMIT ?",
                {project, int64_t{limit}}));
  json out = json::array();
  for (auto& r : rows)
    out.push_back({{"id", r.Int(0)},
                   {"channel_id", r.Int(1)},
                   {"channel", r.Str(2)},
                   {"at", r.Int(3)},
                   {"subject", r.Str(4)},
                   {"ok", r.Int(5) != 0},
                   {"attempts", r.Int(6)},
                   {"http_status", r.Int(7)},
                   {"error", r.Str(8)}});
  return out;
}

// ---------------------------------------------------------------- rules

StatusOr<int64_t> Alerts::CreateRule(const Principal& who, const json& body_in) {
  if (!body_in.is_object()) return InvalidArgument("expected {\"kpi_id\",\"type\",...}");
  json b = body_in;
  static const std::set<std::string> known = {"kpi_id",  "type",     "threshold_pct",    "threshold",
                                              "compare", "channels", "cooldown_minutes", "name"};
  for (auto it = b.begin(); it != b.end(); ++it)
    if (!known.count(it.key()))
      return InvalidArgument(
          "unknown field '" + it.key() +
              "' (known: kpi_id, type, threshold_pct, threshold, compare, channels, cooldown_minutes, name)",
          it.key());
  if (!b.contains("kpi_id") || !b["kpi_id"].is_number_integer()) return InvalidArgument("kpi_id: required", "kpi_id");
  const int64_t kpi_id = b["kpi_id"].get<int64_t>();
  NS_ASSIGN_OR_RETURN(KpiDoc kdoc, kpis_.LoadDoc(who.project, kpi_id));
  if (!b.contains("type")) b["type"] = "below_target";
  std::string type = b["type"].is_string() ? b["type"].get<std::string>() : "";
  if (type != "below_target" && type != "change" && type != "anomaly")
    return InvalidArgument("type: expected below_target, change or anomaly", "type");
  if (type == "below_target" && !kdoc.target.is_number())
    return InvalidArgument("type: below_target needs a KPI with a target (KPI " + std::to_string(kpi_id) + " has none)",
                           "type");
  if (!b.contains("threshold_pct")) b["threshold_pct"] = type == "below_target" ? 10.0 : 15.0;
  if (!b["threshold_pct"].is_number() || b["threshold_pct"].get<double>() <= 0 ||
      b["threshold_pct"].get<double>() > 1000)
    return InvalidArgument("threshold_pct: expected a percentage > 0 (e.g. 10)", "threshold_pct");
  if (!b.contains("threshold")) b["threshold"] = 3.5;
  if (!b["threshold"].is_number() || b["threshold"].get<double>() <= 0)
    return InvalidArgument("threshold: expected a robust z-score > 0 (default 3.5)", "threshold");
  if (!b.contains("compare")) b["compare"] = "dod";
  if (b["compare"] != "dod" && b["compare"] != "wow") return InvalidArgument("compare: expected dod or wow", "compare");
  if (!b.contains("channels")) b["channels"] = json::array();
  if (!b["channels"].is_array()) return InvalidArgument("channels: expected a list of channel ids", "channels");
  for (auto& c : b["channels"]) {
    if (!c.is_number_integer()) return InvalidArgument("channels: expected a list of channel ids", "channels");
    NS_RETURN_IF_ERROR(channels_.Load(who.project, c.get<int64_t>()).status());
  }
  if (!b.contains("cooldown_minutes")) b["cooldown_minutes"] = 360;
  if (!b["cooldown_minutes"].is_number_integer() || b["cooldown_minutes"].get<int64_t>() < 0)
    return InvalidArgument("cooldown_minutes: expected minutes >= 0", "cooldown_minutes");
  if (!b.contains("name")) b["name"] = kdoc.name + " " + type;
  NS_ASSIGN_OR_RETURN(std::string text, StoredText<AlertRuleDoc>(b));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO alert_rules(project, kpi_id, doc, created_at) VALUES(?, ?, ?, ?)",
                                       {who.project, kpi_id, text, NowMs()}));
    return Audit(db_, who, "create", "alert_rule", id, nullptr, b);
  }));
  return id;
}

StatusOr<json> Alerts::ListRules(const std::string& project) {
  NS_ASSIGN_OR_RETURN(
      auto rows, db_.Query("SELECT id, doc, created_at FROM alert_rules WHERE project = ? ORDER BY id", {project}));
  return DocList<AlertRuleDoc>(rows);
}

Status Alerts::DeleteRule(const Principal& who, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT doc FROM alert_rules WHERE id = ? AND project = ?", {id, who.project}));
  if (rows.empty()) return NotFound("no alert rule " + std::to_string(id));
  NS_ASSIGN_OR_RETURN(AlertRuleDoc rule, ParseStored<AlertRuleDoc>(id, rows[0].Str(0)));
  NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM alert_rules WHERE id = ?", {id}));
  return Audit(db_, who, "delete", "alert_rule", id, rule.ToJson(), nullptr);
}

static StatusOr<json> AlertRow(const SqlRow& r) {
  NS_ASSIGN_OR_RETURN(AlertDetail detail, ParseStored<AlertDetail>(r.Int(0), r.Str(10)));
  return json{{"id", r.Int(0)},
              {"rule_id", r.Int(1)},
              {"kpi_id", r.Int(2)},
              {"state", r.Str(3)},
              {"fired_at", r.Int(4)},
              {"last_seen_at", r.Int(5)},
              {"acked_at", r.IsNull(6) ? json() : json(r.Int(6))},
              {"acked_by", r.IsNull(7) ? json() : json(r.Str(7))},
              {"resolved_at", r.IsNull(8) ? json() : json(r.Int(8))},
              {"message", r.Str(9)},
              {"detail", detail.ToJson()}};
}

static const char* kAlertCols =
    "SELECT id, rule_id, kpi_id, state, fired_at, last_seen_at, acked_at, acked_by, resolved_at, message, detail FROM "
    "alerts ";

StatusOr<json> Alerts::List(const std::string& project, const std::string& state) {
  if (!state.empty() && state != "firing" && state != "acknowledged" && state != "resolved" && state != "open")
    return InvalidArgument("state: expected firing, acknowledged, resolved or open", "state");
  StatusOr<std::vector<SqlRow>> rows =
      state.empty() ? db_.Query(std::string(kAlertCols) + "WHERE project = ? ORDER BY id DESC", {project})
      : state == "open"
          ? db_.Query(
                std::string(kAlertCols) + "WHERE project = ? AND state IN ('firing','acknowledged') ORDER BY id DESC",
                {project})
          : db_.Query(std::string(kAlertCols) + "WHERE project = ? AND state = ? ORDER BY id DESC", {project, state});
  if (!rows.ok()) return rows.status();
  json out = json::array();
  for (auto& r : *rows) {
    NS_ASSIGN_OR_RETURN(json a, AlertRow(r));
    out.push_back(std::move(a));
  }
  return out;
}

StatusOr<json> Alerts::Get(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query(std::string(kAlertCols) + "WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no alert " + std::to_string(id));
  return AlertRow(rows[0]);
}

Status Alerts::Ack(const Principal& who, int64_t id) {
  NS_ASSIGN_OR_RETURN(json a, Get(who.project, id));
  if (a["state"] == "resolved") return FailedPrecondition("alert " + std::to_string(id) + " is already resolved");
  if (a["state"] == "acknowledged") return Status::OK();
  NS_RETURN_IF_ERROR(db_.Exec("UPDATE alerts SET state = 'acknowledged', acked_at = ?, acked_by = ? WHERE id = ?",
                              {NowMs(), who.actor, id}));
  return Audit(db_, who, "acknowledge", "alert", id, json{{"state", "firing"}}, json{{"state", "acknowledged"}});
}

// ---------------------------------------------------------------- root cause

StatusOr<json> Alerts::RootCause(const std::string& project, const json& doc, PeriodRange cur, PeriodRange prev) {
  NS_ASSIGN_OR_RETURN(KpiDoc kpi, KpiDoc::Parse(doc));
  const int64_t id = doc.contains("id") && doc["id"].is_number_integer() ? doc["id"].get<int64_t>() : 0;
  return RootCause(project, id, kpi, cur, prev);
}

StatusOr<json> Alerts::RootCause(const std::string& project, int64_t kpi_id, const KpiDoc& doc, PeriodRange cur,
                                 PeriodRange prev) {
  json out;
  NS_ASSIGN_OR_RETURN(auto c0, kpis_.Evaluate(project, kpi_id, doc, prev));
  NS_ASSIGN_OR_RETURN(auto c1, kpis_.Evaluate(project, kpi_id, doc, cur));
  const KpiParts t0 = c0[""], t1 = c1[""];
  double r0 = t0.Value(), r1 = t1.Value(), delta = r1 - r0;
  out["previous"] = r0;
  out["current"] = r1;
  out["change"] = delta;
  out["relative_change"] = r0 != 0 ? delta / std::fabs(r0) : 0.0;
  // Funnel: the step whose conversion moved most (relative).
  json steps = json::array();
  NS_ASSIGN_OR_RETURN(json s0, kpis_.FunnelSteps(project, doc, prev));
  NS_ASSIGN_OR_RETURN(json s1, kpis_.FunnelSteps(project, doc, cur));
  json worst;
  double worst_move = 0;
  for (size_t i = 0; i < s0.size() && i < s1.size(); i++) {
    double a = s0[i]["conversion"].get<double>(), b = s1[i]["conversion"].get<double>();
    double rel = a > 0 ? (b - a) / a : 0;
    json st{{"from", s1[i]["from"]}, {"to", s1[i]["to"]}, {"previous", a}, {"current", b}, {"relative_change", rel}};
    steps.push_back(st);
    if (std::fabs(rel) > std::fabs(worst_move) && (delta == 0 || (rel < 0) == (delta < 0))) {
      worst_move = rel;
      worst = st;
    }
  }
  out["steps"] = steps;
  out["step"] = worst;
  // Breakdown contributions: an exact additive split of the change over the values of
  // each dimension. Ratio R = N/D: contribution of v = (N1v - R0*D1v)/D1 - (N0v - R0*D0v)/D0
  // (they sum to R1 - R0); sums: V1v - V0v.
  json contribs = json::array();
  const bool mean_of_days = doc.reduce.contains("op") && doc.reduce["op"] == "avg";
  for (const std::string& d : doc.dimensions) {
    auto b0 = kpis_.Evaluate(project, kpi_id, doc, prev, d);
    auto b1 = kpis_.Evaluate(project, kpi_id, doc, cur, d);
    if (!b0.ok() || !b1.ok()) continue;
    std::set<std::string> keys;
    for (auto& [k, v] : *b0) keys.insert(k);
    for (auto& [k, v] : *b1) keys.insert(k);
    if (keys.empty() || (keys.size() == 1 && *keys.begin() == "(none)")) continue;  // dimension not in the data
    for (const auto& k : keys) {
      KpiParts p0 = b0->count(k) ? b0->at(k) : KpiParts{0, 0, t0.ratio};
      KpiParts p1 = b1->count(k) ? b1->at(k) : KpiParts{0, 0, t1.ratio};
      double c;
      if (t1.ratio || t0.ratio) {
        // A mean of daily values ("op":"avg") does not split its denominator (the days)
        // over the values: each value's series spans the same days, so its part of the
        // change is N1v/D1 - N0v/D0 (adding up to R1 - R0 when the values partition N).
        double w = mean_of_days ? 0.0 : r0;
        double a = t1.den > 0 ? (p1.num - w * p1.den) / t1.den : 0;
        double b = t0.den > 0 ? (p0.num - w * p0.den) / t0.den : 0;
        c = a - b;
      } else {
        c = p1.num - p0.num;
      }
      contribs.push_back({{"dimension", d},
                          {"value", k},
                          {"contribution", c},
                          {"share", delta != 0 ? c / delta : 0.0},
                          {"previous", p0.Value()},
                          {"current", p1.Value()}});
    }
  }
  // Top 3 in the direction of the change.
  std::sort(contribs.begin(), contribs.end(), [&](const json& a, const json& b) {
    double x = a["contribution"].get<double>(), y = b["contribution"].get<double>();
    return delta < 0 ? x < y : x > y;
  });
  json top = json::array();
  for (auto& c : contribs) {
    if (top.size() == 3) break;
    double v = c["contribution"].get<double>();
    if (delta == 0 || (v < 0) != (delta < 0) || v == 0) continue;
    top.push_back(c);
  }
  out["top_contributors"] = top;
  // One line: "−18% d/d; 71% of the drop from channel=feed_ads, step order→pay".
  std::string hint;
  if (!top.empty()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f%%", std::fabs(top[0]["share"].get<double>()) * 100);
    hint = std::string(buf) + " of the " + (delta < 0 ? "drop" : "rise") + " from " +
           top[0]["dimension"].get<std::string>() + "=" + top[0]["value"].get<std::string>();
    for (size_t i = 1; i < top.size(); i++) {
      std::snprintf(buf, sizeof buf, "%.0f%%", std::fabs(top[i]["share"].get<double>()) * 100);
      hint += ", " + std::string(buf) + " " + top[i]["dimension"].get<std::string>() + "=" +
              top[i]["value"].get<std::string>();
    }
  }
  if (worst.is_object()) {
    hint += std::string(hint.empty() ? "" : "; ") + "step " + worst["from"].get<std::string>() + "\u2192" +
            worst["to"].get<std::string>() + " " + SignedPercent(worst_move);
  }
  // The kind's own line (channels: which are past their stop-loss line) comes first.
  if (auto why = kpis_.Explain(project, doc, cur); why.ok() && !why->empty()) {
    out["explanation"] = *why;
    hint = *why + (hint.empty() ? "" : "; " + hint);
  }
  out["hint"] = hint;
  return out;
}

// ---------------------------------------------------------------- evaluation

StatusOr<json> Alerts::EvaluateKpi(const std::string& project, int64_t kpi_id) {
  NS_ASSIGN_OR_RETURN(KpiRow k, kpis_.LoadRow(project, kpi_id));
  if (!k.state) {  // never computed: now
    NS_RETURN_IF_ERROR(kpis_.Refresh(project, kpi_id).status());
    NS_ASSIGN_OR_RETURN(k, kpis_.LoadRow(project, kpi_id));
    if (!k.state) return Internal("KPI " + std::to_string(kpi_id) + " has no state after a refresh");
  }
  const KpiDoc& doc = k.doc;
  const KpiState& kpi = *k.state;
  NS_ASSIGN_OR_RETURN(auto rules,
                      db_.Query("SELECT id, doc FROM alert_rules WHERE kpi_id = ? AND project = ?", {kpi_id, project}));
  json fired = json::array();
  bool higher = doc.higher_is_better;
  bool ratio = IsRatioKpi(doc);
  const std::string& name = doc.name;
  for (auto& rr : rules) {
    int64_t rule_id = rr.Int(0);
    NS_ASSIGN_OR_RETURN(AlertRuleDoc rule, ParseStored<AlertRuleDoc>(rule_id, rr.Str(1)));
    const std::string& type = rule.type;
    double pct = rule.threshold_pct.get<double>() / 100.0;
    bool firing = false;
    std::string what;
    PeriodRange cur{}, prev{};
    bool have_windows = false;
    json facts;
    const std::vector<KpiDailyValue>& daily = kpi.daily;
    if (type == "below_target") {
      if (kpi.achievement_rate && kpi.actual && doc.target.is_number()) {
        double rate = *kpi.achievement_rate;
        // "below target by >= X%" (shortfall 1 - rate of at least pct), with the same
        // tolerance as the light: 18% of a 20% target is exactly 10% below.
        firing = rate <= 1.0 - pct + 1e-9;
        char buf[256];
        std::snprintf(buf, sizeof buf, "%s %s vs target %s (%.0f%% achieved)", name.c_str(),
                      FormatValue(*kpi.actual, ratio).c_str(), FormatValue(doc.target.get<double>(), ratio).c_str(),
                      rate * 100);
        what = buf;
        facts = {{"actual", *kpi.actual}, {"target", doc.target}, {"achievement_rate", rate}};
        // Compare the period so far with the same number of days just before it.
        int32_t from = ParseDate(kpi.period_from, "").value();
        int32_t to = ParseDate(kpi.as_of, "").value();
        cur = {from, to};
        prev = {from - (to - from + 1), from - 1};
        have_windows = true;
      }
    } else if (daily.size() >= 2) {
      size_t last = daily.size() - 1;
      size_t base = rule.compare == "wow" ? (last >= 7 ? last - 7 : SIZE_MAX) : last - 1;
      if (type == "change" && base != SIZE_MAX && daily[last].value && daily[base].value) {
        double v1 = *daily[last].value, v0 = *daily[base].value;
        double rel = v0 != 0 ? (v1 - v0) / std::fabs(v0) : 0;
        firing = higher ? rel <= -pct : rel >= pct;
        what = name + " " + SignedPercent(rel) + (rule.compare == "wow" ? " w/w" : " d/d") + " (" +
               FormatValue(v0, ratio) + " \u2192 " + FormatValue(v1, ratio) + " on " + daily[last].date + ")";
        facts = {{"previous", v0}, {"current", v1}, {"relative_change", rel}, {"date", daily[last].date}};
        int32_t d1 = ParseDate(daily[last].date, "").value();
        int32_t d0 = ParseDate(daily[base].date, "").value();
        cur = {d1, d1};
        prev = {d0, d0};
        have_windows = true;
      } else if (type == "anomaly" && daily[last].value) {
        DailySeries s;
        s.first_day = ParseDate(daily[0].date, "").value();
        for (const KpiDailyValue& d : daily) s.values.push_back(d.value.value_or(std::nan("")));
        int32_t day = s.first_day + static_cast<int32_t>(last);
        double v = s.values[last];
        AnomalyScore a = ScoreAnomaly(s, day, v, rule.threshold.get<double>());
        firing = a.anomalous && (higher ? a.score < 0 : a.score > 0);
        what = name + " anomaly: " + a.explanation;
        facts = {{"value", v}, {"expected", a.expected}, {"score", a.score}, {"date", daily[last].date}};
        cur = {day, day};
        prev = {day - 7, day - 7};  // same weekday last week
        have_windows = true;
      }
    }
    NS_ASSIGN_OR_RETURN(
        auto open,
        db_.Query("SELECT id FROM alerts WHERE rule_id = ? AND state IN ('firing','acknowledged')", {rule_id}));
    int64_t now = NowMs();
    if (!firing) {
      for (auto& o : open) {
        Notification n;
        n.title = "[Northstar] resolved: " + name;
        n.text = what.empty() ? name + " is back within its rule" : what;
        n.level = "info";
        n.data = {{"alert_id", o.Int(0)}, {"rule_id", rule_id}, {"kpi_id", kpi_id}, {"state", "resolved"}};
        n.dedup_key = "alert-" + std::to_string(o.Int(0)) + "-resolved";
        // The state change and its message commit together (the outbox), then it is sent.
        NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
          NS_RETURN_IF_ERROR(
              db_.Exec("UPDATE alerts SET state = 'resolved', resolved_at = ? WHERE id = ?", {now, o.Int(0)}));
          return channels_.Enqueue(project, rule.channels, n).status();
        }));
        channels_.DeliverPending(n.dedup_key);
      }
      continue;
    }
    if (!open.empty()) {  // de-duplication: one open alert per rule
      NS_RETURN_IF_ERROR(db_.Exec("UPDATE alerts SET last_seen_at = ? WHERE id = ?", {now, open[0].Int(0)}));
      continue;
    }
    NS_ASSIGN_OR_RETURN(
        auto recent,
        db_.Query("SELECT MAX(resolved_at) FROM alerts WHERE rule_id = ? AND state = 'resolved'", {rule_id}));
    if (!recent.empty() && !recent[0].IsNull(0) && now - recent[0].Int(0) < rule.cooldown_minutes * 60'000)
      continue;  // cooldown after a resolution: a flapping KPI sends one message
    json cause = json::object();
    if (have_windows) {
      auto rc = RootCause(project, kpi_id, doc, cur, prev);
      if (rc.ok()) cause = *rc;
    }
    std::string hint = cause.value("hint", "");
    std::string message = what + (hint.empty() ? "" : "; " + hint);
    const json detail = AlertDetail{type, name, facts, cause}.ToJson();
    int64_t aid = 0;
    Notification n;
    // The alert, the KPI's hint and the message commit in one transaction (the outbox), so a
    // crash can neither leave a fired alert without its message nor send it twice.
    NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
      NS_ASSIGN_OR_RETURN(
          aid,
          db_.Insert("INSERT INTO alerts(project, rule_id, kpi_id, state, fired_at, last_seen_at, message, detail) "
                     "VALUES(?, ?, ?, 'firing', ?, ?, ?, ?)",
                     {project, rule_id, kpi_id, now, now, message, detail.dump()}));
      // The hint becomes the KPI's automatic "reason for the change".
      NS_ASSIGN_OR_RETURN(auto st, db_.Query("SELECT state FROM kpis WHERE id = ?", {kpi_id}));
      if (!st.empty() && !st[0].IsNull(0)) {
        NS_ASSIGN_OR_RETURN(KpiState s, ParseStored<KpiState>(kpi_id, st[0].Str(0)));
        s.auto_reason = message;
        NS_RETURN_IF_ERROR(db_.Exec("UPDATE kpis SET state = ? WHERE id = ?", {s.ToJson().dump(), kpi_id}));
      }
      const std::string light = kpi.light.value_or("");
      n.level = light == "red" || type != "below_target" ? "critical" : "warning";
      n.title = "[Northstar] " + name + (light.empty() ? "" : " (" + light + ")") + ": " + type;
      n.text = message;
      if (!doc.owner.empty()) n.text += "\nOwner: " + doc.owner;
      n.data = {{"alert_id", aid}, {"rule_id", rule_id}, {"kpi_id", kpi_id}, {"state", "firing"}, {"detail", detail}};
      n.dedup_key = "alert-" + std::to_string(aid);
      return channels_.Enqueue(project, rule.channels, n).status();
    }));
    json deliveries = channels_.DeliverPending(n.dedup_key);
    fired.push_back({{"id", aid}, {"rule_id", rule_id}, {"message", message}, {"deliveries", deliveries}});
  }
  return fired;
}

}  // namespace ns
