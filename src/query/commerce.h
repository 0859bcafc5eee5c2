// Commerce metrics and the LTV cohort table as query kinds (docs/queries.md "Commerce",
// "LTV"). Both read the project's payment settings (PeopleSettings: pay_event, amount and
// order_id properties) so an order is the same order here as in RFM and on the person page.
//
// commerce.cc: GMV (net of refunds), orders (one per (person, order_id)), payers, AOV, paid
// conversion, first-purchase conversion, repurchase rate and cycle, cart abandonment; for
// the range, per interval and per breakdown value.
// ltv.cc: cumulative revenue per person by months (weeks) since the first payment, per
// first-payment cohort.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "query/person_facts.h"
#include "query/query_kind.h"
#include "query/query_spec.h"

namespace ns {

// The events commerce counts besides the payment. A request may name them; otherwise the
// project's people settings (refund_event, cart_event, register_event: the events the
// built-in tags count too), whose defaults are these.
struct CommerceEvents {
  std::string pay;                   // PeopleSettings::pay_event
  std::string refund = "refund";     // subtracted from GMV, with its own count
  std::string cart = "add_to_cart";  // cart abandonment
  std::string reg = "register";      // first-purchase conversion: registering
};

struct CommerceQuery {
  int32_t from_day = 0, to_day = 0;
  std::optional<Interval> interval;  // set: a series of the metrics per interval
  std::optional<PropertyRef> breakdown;
  size_t breakdown_limit = 25;
  std::vector<Filter> filters;  // on every event the metrics read (event, person, cohort)
  // Request overrides of the event names ("" = the default / the project's setting).
  std::string refund_event, cart_event, register_event;
  int first_purchase_days = 7;  // a registered person converts by paying within N x 24 h
  int cart_window_hours = 24;   // a cart is abandoned without a payment within N hours
};
StatusOr<CommerceQuery> ParseCommerceQuery(const nlohmann::json& j);

// Sums over persons of one scope (the range, an interval, a breakdown value); the ratios
// are derived in ToJson.
struct CommerceMetrics {
  double gmv_gross = 0;      // the orders' amounts
  double refund_amount = 0;  // the refund events' amounts
  uint64_t refunds = 0;      // refund events
  uint64_t orders = 0;
  uint64_t paying_persons = 0;
  uint64_t active_persons = 0;
  uint64_t repeat_payers = 0;  // payers with >= 2 orders
  uint64_t registered_persons = 0;
  uint64_t first_purchase_persons = 0;
  uint64_t carts = 0;
  uint64_t abandoned_carts = 0;
  std::vector<double> order_gaps_days;  // between consecutive orders of each person
};
nlohmann::json CommerceMetricsJson(const CommerceMetrics& m);

struct CommerceResult {
  std::string timezone;
  int32_t date_from = 0, date_to = 0;
  CommerceEvents events;
  int first_purchase_days = 7, cart_window_hours = 24;
  CommerceMetrics total;
  std::optional<Interval> interval;
  std::vector<std::string> dates;
  std::vector<CommerceMetrics> series;
  std::optional<std::string> breakdown;
  std::vector<std::pair<nlohmann::json, CommerceMetrics>> breakdowns;  // largest GMV first
};

StatusOr<CommerceResult> RunCommerce(const CommerceQuery& q, const QueryContext& ctx);
nlohmann::json ToJson(const CommerceResult& r);

// ---------------------------------------------------------------- LTV

struct LtvQuery {
  int32_t from_day = 0, to_day = 0;  // first payments on these local days form the cohorts
  Interval period = Interval::kMonth;
  int periods = 12;                  // columns: periods 0 .. periods-1 since the cohort's
  std::optional<int32_t> as_of_day;  // revenue up to the end of this day (default today)
  std::vector<Filter> filters;       // on payment and refund events
  std::string refund_event;          // "" = "refund"
};
StatusOr<LtvQuery> ParseLtvQuery(const nlohmann::json& j);

struct LtvCohort {
  int32_t start_day = 0;  // the first day of the cohort's period
  uint64_t persons = 0;
  std::vector<double> revenue;  // cumulative net revenue of the cohort through period k
};

struct LtvResult {
  std::string timezone;
  Interval period = Interval::kMonth;
  int32_t date_from = 0, date_to = 0, as_of_day = 0;
  int periods = 0;
  std::vector<LtvCohort> cohorts;
};

StatusOr<LtvResult> RunLtv(const LtvQuery& q, const QueryContext& ctx);
nlohmann::json ToJson(const LtvResult& r);

}  // namespace ns
