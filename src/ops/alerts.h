// Alert rules on KPIs ("data red dot"), their alerts (firing -> acknowledged -> resolved,
// one open alert per rule, cooldown after resolution), root-cause hints, and the
// notification channels they are sent to (delivery log kept).
//
// Rule types: below_target (achievement at or below 1 - threshold_pct%, default 10),
// change (day-over-day "dod" or week-over-week "wow" change in the bad direction of at
// least threshold_pct%, default 15), anomaly (robust z-score against the trailing 28 days
// with weekday seasonality, default threshold 3.5).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "auth/accounts.h"
#include "core/status.h"
#include "meta/meta_db.h"
#include "ops/kpis.h"
#include "ops/notify.h"

namespace ns {

// "https://hooks.slack.com/…9xYz": what lists and the audit log show of a channel URL.
std::string MaskChannelUrl(const std::string& url);

class Channels {
 public:
  explicit Channels(MetaDb& db) : db_(db) {}
  StatusOr<int64_t> Create(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> List(const std::string& project);  // secrets masked
  Status Delete(const Principal& who, int64_t id);
  StatusOr<NotificationChannel> Load(const std::string& project, int64_t id);
  // Delivers to one channel and logs the delivery (no outbox: the test route).
  DeliveryResult Send(const NotificationChannel& ch, const Notification& n);
  // Writes the message to the outbox for the given channels (all of the project's when
  // empty), once per (channel, n.dedup_key): a key already there is skipped, so a job re-run
  // after a crash cannot send it twice. Call it inside the transaction of the change that
  // causes the message; an empty dedup_key gets a unique one. Returns the key used.
  struct Enqueued {
    std::string dedup_key;
    nlohmann::json unknown_channels = nlohmann::json::array();  // [{"channel_id","ok":false,"error"}]
  };
  StatusOr<Enqueued> Enqueue(const std::string& project, const std::vector<int64_t>& ids, Notification n);
  // Sends the outbox's pending messages of one key (all pending ones when empty) and records
  // each outcome; returns the delivery results as JSON (a key already sent: "duplicate").
  nlohmann::json DeliverPending(const std::string& dedup_key = {});
  // Enqueue, then DeliverPending of its key.
  nlohmann::json SendAll(const std::string& project, const std::vector<int64_t>& ids, const Notification& n);
  StatusOr<nlohmann::json> Deliveries(const std::string& project, int limit);
  RetryPolicy retry;

 private:
  MetaDb& db_;
};

class Alerts {
 public:
  Alerts(MetaDb& db, Kpis& kpis, Channels& channels) : db_(db), kpis_(kpis), channels_(channels) {}
  StatusOr<int64_t> CreateRule(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> ListRules(const std::string& project);
  Status DeleteRule(const Principal& who, int64_t id);
  StatusOr<nlohmann::json> List(const std::string& project, const std::string& state);
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id);
  Status Ack(const Principal& who, int64_t id);
  // Evaluates every rule of the KPI against its current state (after a refresh): fires,
  // keeps or resolves alerts and sends notifications. Returns the alerts fired.
  StatusOr<nlohmann::json> EvaluateKpi(const std::string& project, int64_t kpi_id);
  // Root-cause hint for a KPI between two ranges: funnel step moves and the top 3
  // breakdown contributions to the change.
  StatusOr<nlohmann::json> RootCause(const std::string& project, int64_t kpi_id, const KpiDoc& kpi, PeriodRange cur,
                                     PeriodRange prev);
  // The same for a definition as JSON (ValidateKpi's answer, or Kpis::Doc's with its "id").
  StatusOr<nlohmann::json> RootCause(const std::string& project, const nlohmann::json& kpi_doc, PeriodRange cur,
                                     PeriodRange prev);

 private:
  MetaDb& db_;
  Kpis& kpis_;
  Channels& channels_;
};

// Percent text with sign, e.g. -0.18 -> "−18%".
std::string SignedPercent(double x);

}  // namespace ns
