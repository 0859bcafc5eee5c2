// A journey's definition (docs/automation.md): trigger + audience + steps (waits, conditions,
// actions) + limits + holdout + goal, parsed and validated once from the client's JSON (errors
// name the field, e.g. "steps[2].url") and stored as that JSON in meta.db (journeys.doc), read
// back through the same parser. Round trip: Parse(j).ToJson(true) == the stored form.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ns {

struct JourneyTrigger {
  std::string type;               // "event" | "cohort" | "schedule"
  std::string event;              // event: the event whose arrival enters the person
  int64_t cohort = 0;             // cohort: entering it enters the journey; schedule: the persons entered
  bool include_existing = false;  // cohort: the members at the first evaluation enter too
  int every_minutes = 60;         // cohort: how often membership is evaluated (1..1440)
  std::string at;                 // schedule: local time of day "HH:MM" (project time zone)
};

struct JourneyStep {
  std::string type;  // "wait" | "condition" | "action"
  // wait
  int64_t wait_ms = 0;
  // condition: the person did (performed) / did not do `event` since entering the journey
  std::string event;
  bool performed = false;
  // action
  std::string action;             // "webhook" | "notify_owner" | "set_property" | "add_to_cohort"
  std::string url, secret;        // webhook
  std::string title, text;        // webhook, notify_owner: templates ({{person.KEY}}, ...)
  nlohmann::json payload;         // webhook: JSON whose strings are templates (null: none)
  std::vector<int64_t> channels;  // notify_owner: channel ids (empty: all of the project's)
  std::string property;           // set_property
  nlohmann::json value;           // set_property: string, number or boolean
  int64_t cohort = 0;             // add_to_cohort: a static cohort

  bool IsMessage() const { return type == "action" && (action == "webhook" || action == "notify_owner"); }
};

struct JourneyLimits {
  std::string quiet_hours;   // "22:00-08:00" (project time zone) or "": messages wait until it ends
  int frequency_max = 0;     // at most this many messages per person ... (0: no cap)
  int frequency_hours = 24;  // ... in this many hours, over all journeys of the project
  int rate_per_minute = 0;   // the journey's messages per minute (0: unlimited)
  std::string end_date;      // "YYYY-MM-DD" (local, inclusive) or "": no entries or sends after it
};

struct JourneyDelivery {
  int max_attempts = 5;      // then the send is a dead letter
  int backoff_seconds = 30;  // wait before attempt 2; doubles each attempt (capped at 1 h)
};

struct JourneyGoal {
  std::string event;  // "" = no goal (no conversion figures)
  int within_days = 7;
};

struct JourneyDoc {
  std::string name, description, owner;
  JourneyTrigger trigger;
  int64_t audience_cohort = 0;  // 0: everyone
  std::vector<JourneyStep> steps;
  JourneyLimits limits;
  JourneyDelivery delivery;
  double holdout_percent = 10;
  JourneyGoal goal;
  int lookback_hours = 1;  // event trigger: events up to this long before activation count

  // Validates a client document (InvalidArgument naming the field). Also reads stored ones.
  static StatusOr<JourneyDoc> Parse(const nlohmann::json& j);
  // with_secrets false: webhook secrets are left out and "secret_set" says whether there is one.
  nlohmann::json ToJson(bool with_secrets) const;
  // Index of the first action step (steps always hold one).
  size_t FirstAction() const;
};

}  // namespace ns
