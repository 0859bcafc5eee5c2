// Channels: acquisition channels with their spend (docs/queries.md "Channels"). Each person
// is acquired by the channel of their first event (the first of `channel_properties` set on
// it, "(none)" without any); the persons first seen in the range are the channel's new
// persons, and their orders (payment events of the people settings, one per order id) are
// its revenue. Spend rows come through QueryContext::spend (query/spend_source.h).
//
// With `acquisition_event` a person is acquired by their first event of that name instead
// (the channel read from that row), and `conversion_seconds` counts a conversion within that
// many seconds of the acquisition instead of within conversion_days local days.
//
// One pass over the rows (only the acquisition event's rows, through each block's event
// index, when it is named) finds each person's first timestamp and the channel at it; a
// second reads the payments' rows: O(rows + orders log orders). Both passes run on the
// query threads, blocks shared out (channels.h: the thread count, for tests).
#include "query/channels.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/person_scan.h"
#include "query/scan.h"
#include "query/spend_source.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr const char* kNoChannel = "(none)";

struct ChannelsQuery {
  int32_t from_day = 0, to_day = 0;
  int conversion_days = 7;
  std::optional<int64_t> conversion_seconds;  // instead of conversion_days
  std::string acquisition_event;              // "": the first event of any kind
  std::vector<std::string> channel_properties = {"channel", "utm_source"};
  double stop_loss_roas = 1.0;
  int stop_loss_days = 7;
  std::optional<double> budget;
  int budget_lookback_days = 14;
};

StatusOr<double> GetNumber(const json& j, const char* key, const std::string& prefix, double def, double lo) {
  const std::string field = prefix.empty() ? key : prefix + "." + key;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number() || !std::isfinite(it->get<double>()))
    return InvalidArgument(field + ": expected a number, got " + TypeName(*it), field);
  const double v = it->get<double>();
  if (v < lo) return InvalidArgument(field + ": must be at least " + std::to_string(lo) + ", got " + it->dump(), field);
  return v;
}

StatusOr<ChannelsQuery> ParseChannelsQuery(const json& j) {
  NS_RETURN_IF_ERROR(
      CheckFields(j, "",
                  {"kind", "date_from", "date_to", "conversion_days", "conversion_seconds", "acquisition_event",
                   "channel_properties", "stop_loss", "budget", "budget_lookback_days"}));
  ChannelsQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(int64_t cd, GetInt(j, "conversion_days", "", q.conversion_days, 1, 3650));
  q.conversion_days = static_cast<int>(cd);
  if (j.contains("conversion_seconds") && !j["conversion_seconds"].is_null()) {
    NS_ASSIGN_OR_RETURN(int64_t cs, GetInt(j, "conversion_seconds", "", 0, 0, int64_t{3650} * 86400));
    q.conversion_seconds = cs;
  }
  NS_ASSIGN_OR_RETURN(q.acquisition_event, GetString(j, "acquisition_event", "", false));
  if (auto it = j.find("channel_properties"); it != j.end() && !it->is_null()) {
    if (!it->is_array() || it->empty() || it->size() > 8)
      return InvalidArgument("channel_properties: expected an array of 1 to 8 property names", "channel_properties");
    q.channel_properties.clear();
    for (size_t i = 0; i < it->size(); i++) {
      const json& v = (*it)[i];
      const std::string f = "channel_properties[" + std::to_string(i) + "]";
      if (!v.is_string() || v.get_ref<const std::string&>().empty())
        return InvalidArgument(f + ": expected a property name", f);
      q.channel_properties.push_back(v.get<std::string>());
    }
  }
  if (auto it = j.find("stop_loss"); it != j.end() && !it->is_null()) {
    if (!it->is_object())
      return InvalidArgument("stop_loss: expected {\"roas_below\": number, \"days\": integer}", "stop_loss");
    NS_RETURN_IF_ERROR(CheckFields(*it, "stop_loss", {"roas_below", "days"}));
    NS_ASSIGN_OR_RETURN(q.stop_loss_roas, GetNumber(*it, "roas_below", "stop_loss", q.stop_loss_roas, 0));
    NS_ASSIGN_OR_RETURN(int64_t d, GetInt(*it, "days", "stop_loss", q.stop_loss_days, 1, 3650));
    q.stop_loss_days = static_cast<int>(d);
  }
  if (j.contains("budget") && !j["budget"].is_null()) {
    NS_ASSIGN_OR_RETURN(double b, GetNumber(j, "budget", "", 0, 0));
    q.budget = b;
  }
  NS_ASSIGN_OR_RETURN(int64_t lb, GetInt(j, "budget_lookback_days", "", q.budget_lookback_days, 1, 3650));
  q.budget_lookback_days = static_cast<int>(lb);
  return q;
}

struct Order {
  int64_t ts = std::numeric_limits<int64_t>::max();  // its first event
  double amount = 0;                                 // the largest amount among its events
  int32_t day = 0;                                   // the local day of ts
};

struct ChannelAcc {
  uint64_t new_persons = 0, converted = 0, paying = 0;
  double spend = 0, revenue = 0, revenue_cumulative = 0;
  std::vector<double> daily_spend, daily_revenue;  // per day of the range
  std::map<int32_t, double> revenue_by_day;        // from date_from on, for the payback
  std::set<std::string> currencies;
};

json Ratio(double num, double den) { return den > 0 ? json(num / den) : json(nullptr); }

// The payback day: the first day (counted from date_from, 0-based) by whose end the
// revenue of the channel's new persons reaches its spend; null without spend or if not yet.
json PaybackDays(const ChannelAcc& a, int32_t from_day) {
  if (!(a.spend > 0)) return nullptr;
  double sum = 0;
  for (const auto& [day, r] : a.revenue_by_day) {
    if (day < from_day) continue;  // orders before the acquisition (an acquisition_event)
    sum += r;
    if (sum >= a.spend) return day - from_day;
  }
  return nullptr;
}

// Trailing days (ending at date_to) each with spend and a daily ROAS below the line.
int BelowLineDays(const ChannelAcc& a, double line) {
  int n = 0;
  for (size_t i = a.daily_spend.size(); i-- > 0;) {
    if (!(a.daily_spend[i] > 0) || a.daily_revenue[i] / a.daily_spend[i] >= line) break;
    n++;
  }
  return n;
}

// Recent marginal ROAS: the least-squares slope of daily revenue on daily spend over the
// last `days` days of the range; the window's average ROAS when its spend does not vary.
// Never below 0. nullopt: no spend in the window.
std::optional<double> MarginalRoas(const ChannelAcc& a, int days) {
  const size_t n = a.daily_spend.size();
  const size_t k = std::min(n, static_cast<size_t>(days));
  double sx = 0, sy = 0;
  for (size_t i = n - k; i < n; i++) {
    sx += a.daily_spend[i];
    sy += a.daily_revenue[i];
  }
  if (!(sx > 0)) return std::nullopt;
  const double mx = sx / static_cast<double>(k), my = sy / static_cast<double>(k);
  double sxx = 0, sxy = 0;
  for (size_t i = n - k; i < n; i++) {
    sxx += (a.daily_spend[i] - mx) * (a.daily_spend[i] - mx);
    sxy += (a.daily_spend[i] - mx) * (a.daily_revenue[i] - my);
  }
  const double slope = sxx > 1e-12 * mx * mx * static_cast<double>(k) ? sxy / sxx : sy / sx;
  return std::max(0.0, slope);
}

json AccJson(const std::string& name, const ChannelAcc& a, const ChannelsQuery& q) {
  json daily = json::array();
  for (size_t i = 0; i < a.daily_spend.size(); i++)
    daily.push_back({{"date", FormatDate(q.from_day + static_cast<int32_t>(i))},
                     {"spend", a.daily_spend[i]},
                     {"revenue", a.daily_revenue[i]},
                     {"roas", Ratio(a.daily_revenue[i], a.daily_spend[i])}});
  const int below = BelowLineDays(a, q.stop_loss_roas);
  return json{{"channel", name},
              {"new_persons", a.new_persons},
              {"spend", a.spend},
              {"currencies", json(std::vector<std::string>(a.currencies.begin(), a.currencies.end()))},
              {"cac", Ratio(a.spend, static_cast<double>(a.new_persons))},
              {"converted_persons", a.converted},
              {"paying_persons", a.paying},
              {"first_order_conversion", Ratio(static_cast<double>(a.converted), static_cast<double>(a.new_persons))},
              {"revenue", a.revenue},
              {"revenue_cumulative", a.revenue_cumulative},
              {"roas", Ratio(a.revenue, a.spend)},
              {"roas_cumulative", Ratio(a.revenue_cumulative, a.spend)},
              {"payback_days", PaybackDays(a, q.from_day)},
              {"stop_loss", {{"triggered", below >= q.stop_loss_days}, {"below_days", below}}},
              {"daily", daily}};
}

constexpr uint32_t kUnseen = UINT32_MAX;          // a dictionary code not yet read
constexpr uint32_t kEmptyValue = UINT32_MAX - 1;  // a channel value that is "": not a channel

// One thread's pass-1 state: per person the first timestamp and the channel id at it.
struct AcquisitionPartial {
  std::vector<int64_t> first;
  std::vector<uint32_t> channel;  // into names
  std::vector<std::string> names;
  std::unordered_map<std::string, uint32_t> index;
  uint32_t Intern(std::string v) {
    if (v.empty()) return kEmptyValue;
    auto [it, fresh] = index.try_emplace(v, static_cast<uint32_t>(names.size()));
    if (fresh) names.push_back(std::move(v));
    return it->second;
  }
};

// A payment row of one block (pass 2); order indexes the block's order ids.
constexpr uint32_t kNoOrder = UINT32_MAX;
struct PayRow {
  uint32_t person;
  uint32_t order;
  int64_t ts;
  double amount;
  int32_t day;  // local day of ts, found on the threads
};
struct BlockPays {
  std::vector<PayRow> rows;
  std::vector<std::string> order_ids;
  int32_t min_day = std::numeric_limits<int32_t>::max(), max_day = std::numeric_limits<int32_t>::min();
};

// Runs fn(t) for t in [0, threads), t = 0 on the calling thread.
void RunOnThreads(int threads, const std::function<void(int)>& fn) {
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(fn, t);
  fn(0);
  for (auto& th : pool) th.join();
}

StatusOr<json> RunChannels(const ChannelsQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const PersonTable& pt = *snap.persons;
  const auto& po = pt.person_of();
  const size_t n = pt.size();
  const PeopleSettings& settings = ctx.people_settings();
  const size_t ndays = static_cast<size_t>(q.to_day - q.from_day + 1);
  auto person_of = [&](uint32_t d) { return d < po.size() ? po[d] : d; };

  // Pass 1: each person's first timestamp (of the acquisition event, if named) and the
  // channel of the rows at it: the smallest value among equal timestamps, so the answer does
  // not depend on row order. Rows come grouped by person in time order, so the channel
  // columns are read for about one row per person.
  //
  // Both passes share the blocks out to threads (as the person facts do). Pass 1 keeps
  // per-thread arrays merged by (earliest timestamp, smallest channel), which no order of
  // blocks changes; pass 2 keeps each block's payments apart and joins them in block order,
  // so orders are summed in the same sequence whatever the thread count.
  constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  constexpr uint32_t kNoValue = UINT32_MAX;
  constexpr size_t kAhead = 16;
  const EventMatcher acq =
      q.acquisition_event.empty() ? EventMatcher{true} : EventMatcher::Make(q.acquisition_event, *snap.events);
  const int want_threads = ChannelsScanTuning().threads > 0 ? ChannelsScanTuning().threads : QueryThreads();
  // Each thread of pass 1 holds 12 bytes per person: more threads only while their arrays
  // stay under 256 MiB in all (a project of 50M persons scans serially rather than hold GBs).
  constexpr size_t kPartialBytes = size_t{256} << 20;
  const int by_memory = static_cast<int>(std::clamp<size_t>(kPartialBytes / (std::max<size_t>(n, 1) * 12), 1, 64));
  const int threads = std::max(1, std::min({want_threads, by_memory, static_cast<int>(snap.blocks.size())}));
  std::vector<AcquisitionPartial> acq_parts(static_cast<size_t>(threads));
  std::atomic<size_t> next{0};
  std::atomic<bool> expired{false};
  const bool strided = ChannelsScanTuning().strided;
  // The next block for thread t (`mine` counts the blocks it took).
  auto next_block = [&](int t, size_t& mine) {
    return strided ? static_cast<size_t>(t) + mine++ * static_cast<size_t>(threads) : next.fetch_add(1);
  };
  auto acquire = [&](int t) {
    AcquisitionPartial& P = acq_parts[static_cast<size_t>(t)];
    P.first.assign(n, kNever);
    P.channel.assign(n, kNoValue);
    std::vector<const PropColumn*> cols;
    std::vector<std::vector<uint32_t>> code_ids;  // per column: dictionary code -> P.names id
    size_t mine = 0;
    for (size_t b; (b = next_block(t, mine)) < snap.blocks.size();) {
      if (ctx.deadline && ctx.deadline->Expired()) {
        expired = true;
        return;
      }
      const Block& blk = *snap.blocks[b];
      const RetireWhenDone done(blk, snap.reader_epoch);  // freed now if over the budget (pass 2 reads it again)
      if (!acq.MayMatch(blk)) continue;
      const auto& did = blk.did();
      const auto& ts = blk.ts();
      cols.clear();
      code_ids.resize(q.channel_properties.size());
      for (size_t k = 0; k < q.channel_properties.size(); k++) {
        const PropColumn* c = blk.prop(q.channel_properties[k]);
        cols.push_back(c);
        // A dictionary column's value depends on its code only: each code is read as text once.
        if (c && !c->numeric) code_ids[k].assign(c->dict.size(), kUnseen);
      }
      const uint32_t* rb = nullptr;
      const uint32_t* re = nullptr;
      if (!acq.any) std::tie(rb, re) = blk.EventRows(acq.code);
      const size_t count = acq.any ? blk.size() : static_cast<size_t>(re - rb);
      for (size_t j = 0; j < count; j++) {
        const size_t i = acq.any ? j : rb[j];
        // An event's rows are scattered over the block: ask for those a few rows ahead early.
        if (!acq.any && j + kAhead < count) {
          __builtin_prefetch(&ts[rb[j + kAhead]]);
          __builtin_prefetch(&did[rb[j + kAhead]]);
          if (cols[0] && !cols[0]->numeric) cols[0]->PrefetchCode(rb[j + kAhead]);
        }
        const uint32_t p = person_of(did[i]);
        if (p >= n || ts[i] > P.first[p]) continue;
        if (ts[i] < P.first[p]) {
          P.first[p] = ts[i];
          P.channel[p] = kNoValue;
        }
        for (size_t k = 0; k < cols.size(); k++) {
          const PropColumn* c = cols[k];
          if (!c || !c->Present(i)) continue;
          uint32_t id;
          if (c->numeric) {
            id = P.Intern(c->Get(i).AsString());
          } else {
            uint32_t& cached = code_ids[k][c->CodeAt(i)];
            if (cached == kUnseen) cached = P.Intern(c->Get(i).AsString());
            id = cached;
          }
          if (id == kEmptyValue) continue;
          if (P.channel[p] == kNoValue || P.names[id] < P.names[P.channel[p]]) P.channel[p] = id;
          break;
        }
      }
    }
  };
  RunOnThreads(threads, acquire);
  if (expired) return ctx.deadline->ToStatus();
  AcquisitionPartial& A = acq_parts[0];
  for (size_t t = 1; t < acq_parts.size(); t++) {
    AcquisitionPartial& B = acq_parts[t];
    std::vector<uint32_t> to_a(B.names.size());
    for (size_t id = 0; id < B.names.size(); id++) to_a[id] = A.Intern(B.names[id]);
    for (size_t p = 0; p < n; p++) {
      if (B.first[p] > A.first[p] || B.first[p] == kNever) continue;
      const uint32_t bc = B.channel[p] == kNoValue ? kNoValue : to_a[B.channel[p]];
      if (B.first[p] < A.first[p]) {
        A.first[p] = B.first[p];
        A.channel[p] = bc;
      } else if (bc != kNoValue && (A.channel[p] == kNoValue || A.names[bc] < A.names[A.channel[p]])) {
        A.channel[p] = bc;
      }
    }
    B = AcquisitionPartial{};
  }
  const std::vector<int64_t>& first = A.first;
  const std::vector<uint32_t>& channel_id = A.channel;
  const std::vector<std::string>& channel_names = A.names;
  // New persons: first seen on a local day of the range.
  const int64_t from_ms = ctx.tz.DayStartMs(q.from_day), end_ms = ctx.tz.DayStartMs(q.to_day + 1);
  std::vector<uint8_t> is_new(n, 0);
  for (size_t p = 0; p < n; p++) is_new[p] = first[p] >= from_ms && first[p] < end_ms;
  auto channel_of = [&](size_t p) -> const std::string& {
    static const std::string kNone = kNoChannel;
    return channel_id[p] == kNoValue ? kNone : channel_names[channel_id[p]];
  };

  // Pass 2: the new persons' payments, each block's apart, then as one list in block order.
  std::vector<BlockPays> block_pays(snap.blocks.size());
  const EventMatcher pay = EventMatcher::Make(settings.pay_event, *snap.events);
  next = 0;
  auto collect_pays = [&](int t) {
    size_t mine = 0;
    std::vector<int64_t> starts;  // of the block's local days after its first
    for (size_t b; (b = next_block(t, mine)) < snap.blocks.size();) {
      if (ctx.deadline && ctx.deadline->Expired()) {
        expired = true;
        return;
      }
      const Block& blk = *snap.blocks[b];
      const RetireWhenDone done(blk, snap.reader_epoch);  // read once more: freed now if over the budget
      if (!pay.MayMatch(blk) || pay.any) continue;
      BlockPays& out = block_pays[b];
      const auto& did = blk.did();
      const auto& ts = blk.ts();
      auto [rb, re] = blk.EventRows(pay.code);
      const PropColumn* amount = blk.prop(settings.amount_property);
      const PropColumn* order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
      out.rows.reserve(static_cast<size_t>(re - rb));  // (growing it by doubling copied it twice over)
      // A block spans a day or two: a row's local day is the block's first day plus the day
      // starts it passed (as in lifecycle.cc), not a time-zone lookup per row.
      const int32_t d0 = ctx.tz.LocalDay(blk.min_ts()), d1 = ctx.tz.LocalDay(blk.max_ts());
      starts.clear();
      for (int32_t d = d0 + 1; d <= d1 && d1 - d0 <= 64; d++) starts.push_back(ctx.tz.DayStartMs(d));
      auto day_of = [&](int64_t t) {
        if (d1 - d0 > 64) return ctx.tz.LocalDay(t);
        return d0 + static_cast<int32_t>(std::upper_bound(starts.begin(), starts.end(), t) - starts.begin());
      };
      for (const uint32_t* r = rb; r < re; r++) {
        if (r + kAhead < re) {
          __builtin_prefetch(&ts[r[kAhead]]);
          __builtin_prefetch(&did[r[kAhead]]);
          if (amount && amount->numeric) amount->PrefetchNum(r[kAhead]);
        }
        const uint32_t p = person_of(did[*r]);
        if (p >= n || !is_new[p]) continue;
        double a = 0;
        if (amount && (!amount->GetNum(*r, &a) || !std::isfinite(a))) a = 0;
        uint32_t o = kNoOrder;
        if (order && order->Present(*r)) {
          std::string id = order->Get(*r).AsString();
          if (!id.empty()) {
            o = static_cast<uint32_t>(out.order_ids.size());
            out.order_ids.push_back(std::move(id));
          }
        }
        const int32_t day = day_of(ts[*r]);
        out.min_day = std::min(out.min_day, day);
        out.max_day = std::max(out.max_day, day);
        out.rows.push_back(PayRow{p, o, ts[*r], a, day});
      }
    }
  };
  RunOnThreads(threads, collect_pays);
  if (expired) return ctx.deadline->ToStatus();
  // Orders: a payment without an order id is one by itself; those with one are joined per
  // (person, order id). Read in place: every payment without an id in block order, then
  // the joined ones.
  std::unordered_map<std::string, Order> keyed;  // "person\x1forder"
  int32_t min_day = std::numeric_limits<int32_t>::max(), max_day = std::numeric_limits<int32_t>::min();
  for (const BlockPays& bp : block_pays) {
    min_day = std::min(min_day, bp.min_day);
    max_day = std::max(max_day, bp.max_day);
    if (bp.order_ids.empty()) continue;
    for (const PayRow& r : bp.rows) {
      if (r.order == kNoOrder) continue;
      auto [it, fresh] =
          keyed.try_emplace(std::to_string(r.person) + '\x1f' + bp.order_ids[r.order], Order{r.ts, r.amount, r.day});
      if (r.ts < it->second.ts) it->second = Order{r.ts, it->second.amount, r.day};
      if (!fresh) it->second.amount = std::max(it->second.amount, r.amount);
    }
  }
  std::vector<PayRow> keyed_orders;
  for (auto& [key, x] : keyed)
    keyed_orders.push_back(
        PayRow{static_cast<uint32_t>(std::stoul(key.substr(0, key.find('\x1f')))), kNoOrder, x.ts, x.amount, x.day});
  auto for_each_order = [&](auto&& fn) {
    for (const BlockPays& bp : block_pays)
      for (const PayRow& r : bp.rows)
        if (r.order == kNoOrder) fn(r);
    for (const PayRow& r : keyed_orders) fn(r);
  };

  std::map<std::string, ChannelAcc> acc;
  auto acc_of = [&](const std::string& name) -> ChannelAcc& {
    ChannelAcc& a = acc[name];
    if (a.daily_spend.empty()) {
      a.daily_spend.assign(ndays, 0);
      a.daily_revenue.assign(ndays, 0);
    }
    return a;
  };
  // One accumulator per channel value, looked up once per value rather than per person.
  std::vector<ChannelAcc*> acc_by_id(channel_names.size() + 1, nullptr);
  auto id_of = [&](size_t p) -> size_t { return channel_id[p] == kNoValue ? channel_names.size() : channel_id[p]; };
  auto acc_of_person = [&](size_t p) -> ChannelAcc& {
    const size_t id = id_of(p);
    if (!acc_by_id[id]) acc_by_id[id] = &acc_of(channel_of(p));
    return *acc_by_id[id];
  };
  // Revenue by (channel, day) in one flat array when that is small (a map lookup per order
  // was a fifth of the serial part's time); the maps are filled from it in day order, with
  // the same sums (each (channel, day) adds its orders in the same sequence).
  const size_t ids = channel_names.size() + 1;
  const size_t span = min_day > max_day ? 0 : static_cast<size_t>(int64_t{max_day} - min_day + 1);
  const bool flat = span > 0 && span <= (size_t{1} << 22) / ids;
  std::vector<double> day_revenue(flat ? span * ids : 0);
  std::vector<uint8_t> day_hit(day_revenue.size());
  std::vector<int64_t> first_order(n, kNever);
  std::vector<uint8_t> paid(n, 0);  // an order on or before date_to
  for_each_order([&](const PayRow& o) {
    const uint32_t p = o.person;
    first_order[p] = std::min(first_order[p], o.ts);
    if (o.ts < end_ms) paid[p] = 1;
    ChannelAcc& a = acc_of_person(p);
    const int32_t day = o.day;
    a.revenue_cumulative += o.amount;
    if (flat) {
      const size_t k = id_of(p) * span + static_cast<size_t>(day - min_day);
      day_revenue[k] += o.amount;
      day_hit[k] = 1;
    } else {
      a.revenue_by_day[day] += o.amount;
    }
    if (day >= q.from_day && day <= q.to_day) {  // (orders before an acquisition event: not)
      a.revenue += o.amount;
      a.daily_revenue[static_cast<size_t>(day - q.from_day)] += o.amount;
    }
  });
  // Two ids can share one accumulator (a value that is the text "(none)" and no value at
  // all): a day already in the map is added to, not left as the first id wrote it.
  for (size_t id = 0; flat && id < ids; id++) {
    if (!acc_by_id[id]) continue;
    auto& by_day = acc_by_id[id]->revenue_by_day;
    for (size_t d = 0; d < span; d++)
      if (day_hit[id * span + d])
        by_day.emplace_hint(by_day.end(), min_day + static_cast<int32_t>(d), 0.0)->second += day_revenue[id * span + d];
  }
  for (size_t p = 0; p < n; p++) {
    if (!is_new[p]) continue;
    ChannelAcc& a = acc_of_person(p);
    a.new_persons++;
    a.paying += paid[p];
    // Converted: the first order at or after the acquisition, within the window.
    const int64_t fo = first_order[p];
    if (fo == kNever || fo < first[p]) continue;
    if (q.conversion_seconds ? fo - first[p] <= *q.conversion_seconds * 1000
                             : ctx.tz.LocalDay(fo) - ctx.tz.LocalDay(first[p]) < q.conversion_days)
      a.converted++;
  }
  if (ctx.spend) {
    NS_ASSIGN_OR_RETURN(std::vector<SpendRow> rows, ctx.spend->Rows(q.from_day, q.to_day));
    for (const SpendRow& r : rows) {
      if (r.day < q.from_day || r.day > q.to_day) continue;
      ChannelAcc& a = acc_of(r.channel);
      a.spend += r.spend;
      a.daily_spend[static_cast<size_t>(r.day - q.from_day)] += r.spend;
      a.currencies.insert(r.currency);
    }
  }

  // Channels by new persons (most first), then spend, then name.
  std::vector<const std::pair<const std::string, ChannelAcc>*> list;
  ChannelAcc total;
  total.daily_spend.assign(ndays, 0);
  total.daily_revenue.assign(ndays, 0);
  for (const auto& e : acc) {
    list.push_back(&e);
    const ChannelAcc& a = e.second;
    total.new_persons += a.new_persons;
    total.converted += a.converted;
    total.paying += a.paying;
    total.spend += a.spend;
    total.revenue += a.revenue;
    total.revenue_cumulative += a.revenue_cumulative;
    for (size_t i = 0; i < ndays; i++) {
      total.daily_spend[i] += a.daily_spend[i];
      total.daily_revenue[i] += a.daily_revenue[i];
    }
    for (const auto& [d, r] : a.revenue_by_day) total.revenue_by_day[d] += r;
    total.currencies.insert(a.currencies.begin(), a.currencies.end());
  }
  std::sort(list.begin(), list.end(), [](const auto* x, const auto* y) {
    if (x->second.new_persons != y->second.new_persons) return x->second.new_persons > y->second.new_persons;
    if (x->second.spend != y->second.spend) return x->second.spend > y->second.spend;
    return x->first < y->first;
  });
  json channels = json::array();
  for (const auto* e : list) channels.push_back(AccJson(e->first, e->second, q));
  json totals = AccJson("(all)", total, q);
  totals.erase("channel");
  json out{{"kind", "channels"},
           {"timezone", ctx.tz.name()},
           {"date_from", FormatDate(q.from_day)},
           {"date_to", FormatDate(q.to_day)},
           {"conversion_days", q.conversion_days},
           {"conversion_seconds", q.conversion_seconds ? json(*q.conversion_seconds) : json(nullptr)},
           {"acquisition_event", q.acquisition_event.empty() ? json(nullptr) : json(q.acquisition_event)},
           {"channel_properties", q.channel_properties},
           {"stop_loss_line", {{"roas_below", q.stop_loss_roas}, {"days", q.stop_loss_days}}},
           {"channels", channels},
           {"totals", totals}};
  if (q.budget) {
    // The split: each channel with spend in the window gets budget x its marginal ROAS / the
    // sum of them; equal shares when every marginal ROAS is 0.
    std::vector<std::pair<std::string, double>> m;
    double sum = 0;
    for (const auto* e : list)
      if (auto r = MarginalRoas(e->second, q.budget_lookback_days)) {
        m.emplace_back(e->first, *r);
        sum += *r;
      }
    std::stable_sort(m.begin(), m.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
    json split = json::array();
    for (const auto& [name, r] : m) {
      const double share = sum > 0 ? r / sum : 1.0 / static_cast<double>(m.size());
      split.push_back({{"channel", name}, {"marginal_roas", r}, {"share", share}, {"budget", *q.budget * share}});
    }
    const int32_t window = std::min<int32_t>(q.budget_lookback_days, static_cast<int32_t>(ndays));
    out["budget"] = {{"total", *q.budget},
                     {"lookback_days", q.budget_lookback_days},
                     {"window_from", FormatDate(q.to_day - window + 1)},
                     {"window_to", FormatDate(q.to_day)},
                     {"split", split}};
  }
  return out;
}

}  // namespace

ChannelsTuning& ChannelsScanTuning() {
  static ChannelsTuning t;
  return t;
}

const QueryKind kChannelsKind{
    "channels",
    {"channel"},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(ChannelsQuery q, ParseChannelsQuery(request));
      return RunChannels(q, ctx);
    },
    [](const json& request) { return ParseChannelsQuery(request).status(); },
    [](const json& r) {
      ResultTable rows;
      rows.push_back({"channel", "new_persons", "spend", "cac", "first_order_conversion", "revenue",
                      "revenue_cumulative", "roas", "payback_days", "stop_loss"});
      for (const auto& c : r["channels"])
        rows.push_back({c["channel"], c["new_persons"], c["spend"], c["cac"], c["first_order_conversion"], c["revenue"],
                        c["revenue_cumulative"], c["roas"], c["payback_days"], c["stop_loss"]["triggered"]});
      return rows;
    }};

}  // namespace ns
