#include "cli/demo_data.h"

#include <array>
#include <cmath>
#include <random>
#include <string>

namespace ns {

namespace {

const char* kChannels[] = {"organic", "feed_ads", "search_ads", "kol", "referral", "app_store"};
const double kChannelW[] = {0.30, 0.22, 0.15, 0.10, 0.13, 0.10};
const char* kPlatforms[] = {"ios", "android", "web", "miniprogram"};
const double kPlatformW[] = {0.35, 0.40, 0.10, 0.15};
const char* kCities[] = {"Shanghai", "Beijing", "Shenzhen", "Guangzhou", "Hangzhou", "Chengdu",
                         "Wuhan",    "Xi'an",   "Suzhou",   "Changsha",  "Kunming",  "Hefei"};
const char* kCityTier[] = {"tier1", "tier1", "tier1", "tier1", "tier2", "tier2",
                           "tier2", "tier2", "tier2", "tier3", "tier3", "tier3"};

template <size_t N>
int Pick(std::mt19937_64& rng, const double (&w)[N]) {
  double r = std::uniform_real_distribution<double>(0, 1)(rng), acc = 0;
  for (size_t i = 0; i < N; i++) {
    acc += w[i];
    if (r < acc) return static_cast<int>(i);
  }
  return static_cast<int>(N - 1);
}

}  // namespace

StatusOr<uint64_t> GenerateDemo(const DemoOptions& opt, const TimeZone& tz,
                                const std::function<Status(std::vector<Event>&)>& sink) {
  std::mt19937_64 rng(opt.seed);
  std::uniform_real_distribution<double> U(0, 1);
  const int32_t first_day = opt.last_day - opt.days + 1;
  std::vector<Event> batch;
  uint64_t total = 0;
  auto emit = [&](const std::string& did, int32_t day, int64_t sec, const char* name, std::vector<Property> props) {
    Event e;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = tz.LocalToUtcMs(day, sec * 1000);
    e.props = std::move(props);
    batch.push_back(std::move(e));
    return &batch.back();
  };
  for (int u = 0; u < opt.users; u++) {
    const std::string anon = "anon-" + std::to_string(u + 1);
    const std::string uid = "u" + std::to_string(u + 1);
    // Registrations grow slightly over time.
    int reg_off = static_cast<int>(std::floor(std::sqrt(U(rng)) * opt.days));
    if (reg_off >= opt.days) reg_off = opt.days - 1;
    const int32_t reg_day = first_day + reg_off;
    const int ch = Pick(rng, kChannelW), pl = Pick(rng, kPlatformW);
    const int city = static_cast<int>(rng() % 12);
    const double engagement = std::array<double, 3>{0.10, 0.28, 0.60}[rng() % 3] * (ch == 1   ? 0.7
                                                                                    : ch == 4 ? 1.3
                                                                                              : 1.0);
    auto base = [&] {
      return std::vector<Property>{{"channel", PropValue::Str(kChannels[ch])},
                                   {"platform", PropValue::Str(kPlatforms[pl])}};
    };
    for (int32_t day = reg_day; day <= opt.last_day; day++) {
      int t = day - reg_day;
      bool active = t == 0 || U(rng) < engagement * (0.35 + 0.65 * std::exp(-t / 7.0));
      if (!active) continue;
      // Evening-heavy start time in local time.
      int64_t sec = 8 * 3600 + static_cast<int64_t>(U(rng) * 15 * 3600);
      if (U(rng) < 0.4) sec = 19 * 3600 + static_cast<int64_t>(U(rng) * 4 * 3600);
      std::string who = uid;
      if (t == 0) {
        // First visit anonymous, then register, which merges the anonymous id.
        who = anon;
        emit(anon, day, sec, "app_launch", base());
        sec += 5 + static_cast<int64_t>(rng() % 60);
        emit(anon, day, sec, "page_view", base());
        sec += 10 + static_cast<int64_t>(rng() % 120);
        auto props = base();
        props.push_back({"$anon_distinct_id", PropValue::Str(anon)});
        if (ch == 4) props.push_back({"inviter_id", PropValue::Str("u" + std::to_string(1 + rng() % (u + 1)))});
        Event* e = emit(uid, day, sec, "register", props);
        e->merge_with.push_back(anon);
        e->person_set = {{"city", PropValue::Str(kCities[city])},
                         {"city_tier", PropValue::Str(kCityTier[city])},
                         {"channel", PropValue::Str(kChannels[ch])},
                         {"platform", PropValue::Str(kPlatforms[pl])}};
        if (ch == 4) emit(uid, day, sec + 1, "invite_accept", base());
        who = uid;
      } else {
        emit(who, day, sec, "app_launch", base());
      }
      if (U(rng) < 0.3) emit(who, day, sec += 3, "check_in", base());
      if (U(rng) < 0.08) emit(who, day, sec += 4, "coupon_receive", base());
      int exposures = 1 + static_cast<int>(rng() % 8);
      bool coupon = false;
      for (int x = 0; x < exposures; x++) {
        std::string product = "p" + std::to_string(1 + rng() % 500);
        auto pp = base();
        pp.push_back({"product_id", PropValue::Str(product)});
        emit(who, day, sec += 5 + static_cast<int64_t>(rng() % 40), "product_exposure", pp);
        if (U(rng) > 0.35) continue;
        emit(who, day, sec += 3 + static_cast<int64_t>(rng() % 30), "product_click", pp);
        if (U(rng) > 0.35) continue;
        emit(who, day, sec += 10 + static_cast<int64_t>(rng() % 200), "add_to_cart", pp);
        if (U(rng) > (t == 0 ? 0.45 : 0.4)) continue;
        double amount = std::round((20 + U(rng) * 380) * 100) / 100;
        auto op = pp;
        op.push_back({"amount", PropValue::Num(amount)});
        op.push_back({"order_id", PropValue::Str("o" + std::to_string(u + 1) + "-" + std::to_string(day) + "-" +
                                                 std::to_string(x))});
        emit(who, day, sec += 20 + static_cast<int64_t>(rng() % 300), "order", op);
        if (!coupon && U(rng) < 0.25) {
          emit(who, day, sec += 2, "coupon_use", base());
          coupon = true;
        }
        if (U(rng) > (pl == 2 ? 0.7 : 0.85)) continue;
        emit(who, day, sec += 5 + static_cast<int64_t>(rng() % 120), "pay", op);
        if (U(rng) < 0.15) emit(who, day, sec += 3600, "review", pp);
      }
      if (U(rng) < 0.05) emit(who, day, sec += 30, "share", base());
      if (sec >= 86399) sec = 86399;
    }
    if (batch.size() >= 20'000) {
      total += batch.size();
      NS_RETURN_IF_ERROR(sink(batch));
      batch.clear();
    }
  }
  if (!batch.empty()) {
    total += batch.size();
    NS_RETURN_IF_ERROR(sink(batch));
  }
  return total;
}

}  // namespace ns
