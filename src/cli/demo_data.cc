#include "cli/demo_data.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <random>
#include <string>

#include "auth/accounts.h"
#include "ops/ops_service.h"
#include "people/people_service.h"

namespace ns {

using nlohmann::json;

namespace {

// The story's shares (see the header).
constexpr double kBuyerShare = 0.55;              // users who ever buy; the others never check out
constexpr double kFeedAudienceShare = 0.25;       // sign-ups moved to feed_ads by the new audience
constexpr double kFeedAudienceBuyerShare = 0.28;  // buyers among the new feed-ads audience
constexpr double kRecallDailyReach = 0.12;        // lapsed customers touched per campaign day
constexpr double kRecallPayShare = 0.62;          // of those who come back, the share who pay
constexpr double kMeanLifetimeDays = 40;          // mean days from sign-up to a user's last day of use
constexpr double kFadeDays = 21;                  // days over which a user's activity fades before the last
// The monthly growth goals of the GMV and DAU targets (on the last week of the month before).
constexpr double kDemoGmvGrowthGoal = 1.15;
constexpr double kDemoDauGrowthGoal = 1.05;

const char* kChannels[] = {"organic", "feed_ads", "search_ads", "kol", "referral", "app_store"};
const double kChannelW[] = {0.30, 0.22, 0.15, 0.10, 0.13, 0.10};
// Advertising cost per sign-up (CNY) of the paid channels; 0: not bought (organic, referral).
const double kChannelCostPerSignup[] = {0, 34, 40, 42, 0, 33};
constexpr double kInviteFarmShare = 0.02;  // referred sign-ups whose accept comes from a shared phone
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
                                const std::function<Status(std::vector<Event>&)>& sink, std::vector<SpendRow>* spend) {
  std::mt19937_64 rng(opt.seed);
  // The story's draws (who buys at all, the feed-ads audience, lifetimes, the win-back
  // campaign) use a second stream.
  std::mt19937_64 story(opt.seed * 0x9E3779B97F4A7C15ull + 1);
  std::uniform_real_distribution<double> U(0, 1);
  auto S = [&] { return U(story); };
  // What was added later (invitations sent, advertising spend) draws from a third stream, so
  // the events and stories above stay what they were.
  std::mt19937_64 extra(opt.seed * 0xD1B54A32D192ED03ull + 7);
  auto X = [&] { return U(extra); };
  // New users per (registration day, channel): the paid channels' spend follows them.
  std::vector<std::array<int, std::size(kChannels)>> signups(static_cast<size_t>(opt.days));
  const int32_t first_day = opt.last_day - opt.days + 1;
  const int32_t feed_from = opt.last_day - kDemoFeedAudienceDays;
  const int32_t recall_from = opt.last_day - kDemoRecallDays;
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
    int ch = Pick(rng, kChannelW);
    const int pl = Pick(rng, kPlatformW);
    const int city = static_cast<int>(rng() % 12);
    // The new feed-ads audience: more feed_ads sign-ups in its weeks, fewer of them buy.
    const bool feed_audience = reg_day >= feed_from && (ch == 1 || S() < kFeedAudienceShare);
    if (feed_audience) ch = 1;
    const bool buyer = S() < (feed_audience ? kFeedAudienceBuyerShare : kBuyerShare);
    // Users drift away: after their last day of use they only come back if won back.
    const int32_t last_use_day = reg_day + static_cast<int32_t>(-std::log(1 - S()) * kMeanLifetimeDays);
    const double engagement = std::array<double, 3>{0.10, 0.28, 0.60}[rng() % 3] * (ch == 1   ? 0.7
                                                                                    : ch == 4 ? 1.3
                                                                                              : 1.0);
    auto base = [&] {
      return std::vector<Property>{{"channel", PropValue::Str(kChannels[ch])},
                                   {"platform", PropValue::Str(kPlatforms[pl])}};
    };
    int32_t last_active = reg_day;
    int payments = 0;
    bool touched = false;
    int32_t return_day = INT32_MIN;  // the day a touched customer comes back
    int32_t touch_day = INT32_MIN;
    int64_t touch_sec = 0;
    bool return_pays = false;
    const char* touch_channel = "";
    for (int32_t day = reg_day; day <= opt.last_day; day++) {
      int t = day - reg_day;
      // The win-back campaign: each day, some customers silent for kDemoSilentDays are touched.
      if (!touched && payments > 0 && day >= recall_from && day - last_active >= kDemoSilentDays &&
          S() < kRecallDailyReach) {
        touched = true;
        touch_day = day;
        touch_channel = payments >= 3 ? "wecom" : S() < 0.55 ? "sms" : "push";
        const double comes_back = payments >= 3 ? 0.45 : touch_channel[0] == 's' ? 0.24 : 0.28;
        touch_sec =
            S() < 0.6 ? 10 * 3600 + static_cast<int64_t>(S() * 7200) : 19 * 3600 + static_cast<int64_t>(S() * 3600);
        auto props = base();
        props.push_back({"touch_channel", PropValue::Str(touch_channel)});
        props.push_back({"campaign", PropValue::Str("winback")});
        emit(uid, day, touch_sec, "recall_touch", props);
        if (S() < comes_back) {
          const double r = S();
          return_day = day + (r < 0.4 ? 0 : r < 0.65 ? 1 : r < 0.8 ? 2 : 3 + static_cast<int>(S() * 4));
          return_pays = S() < kRecallPayShare;
        }
      }
      if (day == return_day) {
        // Back through the message: launch, a look, the cart and (for some) a paid order.
        int64_t sec = day == touch_day ? touch_sec + 600 + static_cast<int64_t>(S() * 5400)
                                       : 9 * 3600 + static_cast<int64_t>(S() * 12 * 3600);
        auto props = base();
        props.push_back({"campaign", PropValue::Str("winback")});
        props.push_back({"touch_channel", PropValue::Str(touch_channel)});
        emit(uid, day, sec, "app_launch", props);
        std::string product = "p" + std::to_string(1 + static_cast<int>(S() * 500));
        auto pp = base();
        pp.push_back({"product_id", PropValue::Str(product)});
        emit(uid, day, sec += 20, "product_exposure", pp);
        emit(uid, day, sec += 15, "product_click", pp);
        if (return_pays) {
          emit(uid, day, sec += 60, "add_to_cart", pp);
          auto op = pp;
          op.push_back({"amount", PropValue::Num(std::round((40 + S() * 260) * 100) / 100)});
          op.push_back({"order_id", PropValue::Str("o" + std::to_string(u + 1) + "-" + std::to_string(day) + "-r")});
          emit(uid, day, sec += 90, "order", op);
          auto cp = base();
          cp.push_back({"coupon_type", PropValue::Str("winback")});
          emit(uid, day, sec += 2, "coupon_use", cp);
          emit(uid, day, sec += 30, "pay", op);
          payments++;
        }
        last_active = day;
      }
      // Users fade before they leave: over their last kFadeDays of use (after their first
      // week, so first orders are untouched) activity falls to a quarter, the declining
      // activity the churn model learns from (docs/models.md).
      const double fade =
          t < 7 ? 1.0 : 0.25 + 0.75 * std::min(1.0, static_cast<double>(last_use_day - day) / kFadeDays);
      bool active = t == 0 || U(rng) < engagement * (0.35 + 0.65 * std::exp(-t / 7.0)) * fade;
      if (day > last_use_day) active = false;
      if (!active) continue;
      last_active = day;
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
        std::string inviter;
        if (ch == 4) {
          inviter = "u" + std::to_string(1 + rng() % (u + 1));
          props.push_back({"inviter_id", PropValue::Str(inviter)});
        }
        Event* e = emit(uid, day, sec, "register", props);
        signups[static_cast<size_t>(reg_off)][static_cast<size_t>(ch)]++;
        e->merge_with.push_back(anon);
        e->person_set = {{"city", PropValue::Str(kCities[city])},
                         {"city_tier", PropValue::Str(kCityTier[city])},
                         {"channel", PropValue::Str(kChannels[ch])},
                         {"platform", PropValue::Str(kPlatforms[pl])}};
        if (ch == 4) {
          // The accepted invitation names its inviter: the referral kind's invite graph.
          auto ip = base();
          ip.push_back({"inviter_id", PropValue::Str(inviter)});
          // A few accepts come from a handful of shared phones (an invite farm): the
          // referral kind flags them (shared_device) and counts them both ways.
          if (X() < kInviteFarmShare)
            ip.push_back({"$device_id", PropValue::Str("farm-" + std::to_string(static_cast<int>(X() * 8)))});
          emit(uid, day, sec + 1, "invite_accept", ip);
        }
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
        if (!buyer) continue;  // window shoppers fill carts and never check out
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
        payments++;
        if (U(rng) < 0.15) emit(who, day, sec += 3600, "review", pp);
      }
      if (U(rng) < 0.05) emit(who, day, sec += 30, "share", base());
      // Invitations sent (the referral kind's invites per user): referred users invite more.
      if (t > 0 && X() < (ch == 4 ? 0.24 : 0.08)) emit(who, day, sec + 45, "invite_send", base());
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
  if (spend != nullptr) {
    // The paid channels' daily spend: their sign-ups that day at the channel's cost per
    // sign-up, ±15%; today's as far as the day has gone (an ad platform reports spend
    // through the day, and it accrues before the evening's sign-ups come). The new feed-ads
    // audience is bought at the same price, so feed_ads' ROAS falls under 1 with its buyers
    // and its stop-loss flag comes up (docs/console.md).
    const int64_t day_start = tz.LocalToUtcMs(opt.last_day, 0);
    const double today_share = opt.now_ms >= day_start + 86'400'000
                                   ? 1.0
                                   : std::max(0.0, static_cast<double>(opt.now_ms - day_start) / 86'400'000.0);
    for (int d = 0; d < opt.days; d++)
      for (size_t c = 0; c < std::size(kChannels); c++) {
        if (!(kChannelCostPerSignup[c] > 0)) continue;
        const double amount = signups[static_cast<size_t>(d)][c] * kChannelCostPerSignup[c] * (0.85 + 0.3 * X()) *
                              (d + 1 == opt.days ? today_share : 1.0);
        if (amount > 0)
          spend->push_back(SpendRow{first_day + d, kChannels[c], "", std::round(amount * 100) / 100, "CNY"});
      }
  }
  return total;
}

// ---------------------------------------------------------------- the operations seed

namespace {

// One row of a scenario's process table. Dates are days from today; depends_on holds
// indexes of earlier rows of the same scenario; progress notes are (day from today, note).
struct SeedAction {
  const char* strategy;
  const char* action;
  const char* owner;
  int start, due;
  const char* status;
  json resources;
  const char* delivery_standard;
  std::vector<int> depends_on;
  std::vector<std::pair<int, const char*>> progress;
};

// A target as a team would set it: two significant digits.
double RoundTarget(double x) {
  if (!(x > 0)) return 0;
  const double scale = std::pow(10.0, std::floor(std::log10(x)) - 1);
  return std::round(x / scale) * scale;
}

json Step(const char* event, json filters = json::array()) {
  json s{{"event", event}};
  if (!filters.empty()) s["filters"] = std::move(filters);
  return s;
}

}  // namespace

StatusOr<json> SeedDemoOperations(OpsService& ops, PeopleService& people, const std::string& project) {
  NS_ASSIGN_OR_RETURN(Project * p, ops.registry().OpenProject(project));
  const int32_t today = p->tz.LocalDay(NowMs());
  auto day = [&](int offset) { return FormatDate(today + offset); };
  // The audit log names the demo as the author of what it made (and "scheduler" for what the
  // daily job changed), never a person.
  const Principal who{"demo-data", 0, project, Role::kAdmin, Credential::kSystem};
  MetaDb& db = ops.db();
  json summary;
  Status st = db.Tx([&]() -> Status {
    // ---- accounts (POST /api/v1/users) and a team setting (PATCH /api/v1/settings)
    struct DemoUser {
      const char *email, *password, *name;
      Role role;
    };
    for (const DemoUser& u : {DemoUser{kDemoOperatorEmail, kDemoOperatorPassword, "李娜 (Li Na)", Role::kOperator},
                              DemoUser{kDemoViewerEmail, kDemoViewerPassword, "王芳 (Wang Fang)", Role::kViewer}}) {
      NS_ASSIGN_OR_RETURN(int64_t id, ops.accounts.CreateUser(u.email, u.password, u.name, project, u.role));
      NS_RETURN_IF_ERROR(
          Audit(db, who, "create", "user", id, nullptr,
                json{{"email", u.email}, {"role", std::string(RoleName(u.role))}, {"project", project}}));
    }
    NS_RETURN_IF_ERROR(ops.SetSettings(who, json{{"quiet_hours", "22:00-08:00"}}));

    // ---- the key user groups as cohorts (POST /api/v1/cohorts)
    auto cohort = [&](const char* name, const char* description, json definition) -> StatusOr<int64_t> {
      json body{{"name", name}, {"description", description}, {"kind", "behavioral"}, {"definition", definition}};
      NS_ASSIGN_OR_RETURN(json c, people.CreateCohort(project, body, who.actor));
      const int64_t id = c["id"].get<int64_t>();
      NS_RETURN_IF_ERROR(Audit(db, who, "create", "cohort", id, nullptr, body));
      return id;
    };
    NS_ASSIGN_OR_RETURN(
        int64_t new_users,
        cohort("近 7 天注册未下单 / Signed up within 7 days, not paid",
               "注册 7 天内、还没有完成首笔支付的新用户 / new users in their first 7 days without a payment",
               json{{"op", "and"},
                    {"conditions", json::array({{{"type", "first_performed"}, {"event", "register"}, {"last_days", 7}},
                                                {{"type", "not_performed"}, {"event", "pay"}, {"last_days", 7}}})}}));
    NS_ASSIGN_OR_RETURN(
        int64_t lapsed,
        cohort("沉睡老客 / Lapsed customers",
               "曾经付费、近 30 天没有打开 App 的老客 / customers who paid before and have not opened the app for 30 "
               "days",
               json{{"op", "and"},
                    {"conditions",
                     json::array(
                         {{{"type", "performed"}, {"event", "pay"}},
                          {{"type", "not_performed"}, {"event", "app_launch"}, {"last_days", kDemoSilentDays}}})}}));

    // ---- scenarios (POST /api/v1/scenarios) and their actions (POST /api/v1/scenarios/{id}/actions)
    int actions_created = 0;
    auto add_actions = [&](int64_t scenario_id, const std::vector<SeedAction>& rows) -> Status {
      std::vector<int64_t> ids;
      for (const SeedAction& a : rows) {
        json deps = json::array();
        for (int i : a.depends_on) deps.push_back(ids.at(static_cast<size_t>(i)));
        json progress = json::array();
        for (const auto& [offset, note] : a.progress) progress.push_back({{"date", day(offset)}, {"note", note}});
        json body{{"strategy", a.strategy},   {"action", a.action},
                  {"owner", a.owner},         {"start_date", day(a.start)},
                  {"due_date", day(a.due)},   {"status", a.status},
                  {"resources", a.resources}, {"delivery_standard", a.delivery_standard},
                  {"depends_on", deps},       {"progress", progress}};
        NS_ASSIGN_OR_RETURN(int64_t id, ops.scenarios.AddAction(who, scenario_id, body));
        ids.push_back(id);
        actions_created++;
      }
      return Status::OK();
    };
    const json s1_period{{"from", day(-35)}, {"to", day(20)}};
    NS_ASSIGN_OR_RETURN(
        int64_t s1,
        ops.scenarios.Create(
            who,
            json{
                {"name", "新用户首单转化 / New-user first-order conversion"},
                {"business_module", "用户增长 · 转化 / Growth · conversion"},
                {"goal", {{"metric", "新用户 7 日首单转化率 / first-order conversion within 7 days"}, {"target", 0.2}}},
                {"key_user_group",
                 {{"cohort_id", new_users},
                  {"description", "注册 7 天内未下单的新用户 / new users in their first 7 days without an order"}}},
                {"pain_points",
                 json::array({"新人首页推荐与新用户无关，找不到合适的首单商品", "结算页要填 9 个字段，移动端放弃率高",
                              "新上线的信息流人群包带来的用户意向弱，首单率明显偏低"})},
                {"success_criteria",
                 json::array({"新用户 7 日首单转化率 ≥ 20%", "新人券核销率 ≥ 35%", "首单客单价 ≥ ¥80"})},
                {"owner", "李娜"},
                {"period", s1_period},
                {"status", "active"},
                {"funnel",
                 {{"steps", json::array({Step("register"), Step("product_click"), Step("add_to_cart"), Step("pay")})},
                  {"window_seconds", 7 * 86400}}}}));
    NS_RETURN_IF_ERROR(add_actions(
        s1, {{"新人礼包",
              "上线新人首单券包：满 59 减 20，注册后 7 天内有效",
              "李娜",
              -34,
              -27,
              "done",
              {{"budget", 50000}, {"currency", "CNY"}, {"engineer_days", 3}, {"channels", {"App", "小程序"}}},
              "iOS、Android、小程序三端可领取；新用户领券率 ≥ 60%",
              {},
              {{-30, "券包开发完成，灰度 10% 新用户"}, {-27, "全量上线，首周领券率 64%"}}},
             {"流程优化",
              "结算页字段从 9 个精简到 3 个，支持微信一键填写地址",
              "陈静",
              -30,
              -12,
              "done",
              {{"engineer_days", 12}, {"note", "前端 2 人、后端 1 人"}},
              "结算页放弃率下降 20%，A/B 实验结果显著",
              {},
              {{-18, "A/B 实验上线，50% 流量"}, {-12, "实验组放弃率下降 23%，已全量"}}},
             {"个性化推荐",
              "首页新人专区：按注册渠道推荐低门槛爆款",
              "刘洋",
              -14,
              6,
              "in_progress",
              {{"engineer_days", 15}, {"note", "算法 1 人、前端 1 人"}},
              "新人专区点击率 ≥ 8%，专区成交占新人首单 30%",
              {0},
              {{-5, "推荐模型离线评估通过，开始接入首页"}}},
             {"渠道质量",
              "排查信息流新人群包：暂停首单率偏低的投放计划并调整定向",
              "赵磊",
              -12,
              -2,
              "in_progress",
              {{"channels", {"信息流广告"}}, {"note", "需要广告代理商配合"}},
              "信息流渠道新用户 7 日首单率回到 15% 以上",
              {},
              {{-6, "定位到新上线的泛人群包：首单率不到其他渠道的一半"}, {-3, "调整方案已提交，等待代理商排期"}}},
             {"触达提醒",
              "注册 24 小时未下单的新用户：App 推送 + 短信提醒，附新人券",
              "李娜",
              1,
              10,
              "not_started",
              {{"budget", 8000}, {"currency", "CNY"}, {"channels", {"push", "sms"}}},
              "提醒触达率 ≥ 90%，触达后 48 小时首单率提升 3 个百分点",
              {0, 2},
              {}},
             {"复盘沉淀",
              "阶段复盘：填写效果评估表，沉淀新人首单 SOP",
              "李娜",
              18,
              20,
              "not_started",
              json::object(),
              "效果评估表与 SOP 通过评审",
              {3, 4},
              {}}}));

    const json s2_period{{"from", day(-kDemoRecallDays)}, {"to", day(32)}};
    const json winback = json::array({{{"property", "campaign"}, {"op", "eq"}, {"value", "winback"}}});
    NS_ASSIGN_OR_RETURN(
        int64_t s2,
        ops.scenarios.Create(
            who,
            json{{"name", "流失用户召回 / Churned-user recall"},
                 {"business_module", "用户留存 · 召回 / Retention · win-back"},
                 {"goal", {{"metric", "召回 7 日复购率 / repurchase within 7 days of the recall"}, {"target", 0.15}}},
                 {"key_user_group",
                  {{"cohort_id", lapsed},
                   {"description", "曾付费、30 天未打开 App 的老客 / customers silent for 30 days"}}},
                 {"pain_points", json::array({"老客流失后没有分层触达，短信内容千篇一律",
                                              "召回券门槛高（满 199），对低客单老客没有吸引力",
                                              "点击短信打开 App 后落在首页，没有承接页面"})},
                 {"success_criteria", json::array({"召回 7 日复购率 ≥ 15%", "触达打开率 ≥ 25%"})},
                 {"owner", "张伟"},
                 {"period", s2_period},
                 {"status", "active"},
                 {"funnel",
                  {{"steps",
                    json::array({Step("recall_touch", winback), Step("app_launch"), Step("add_to_cart"), Step("pay")})},
                   {"window_seconds", 7 * 86400}}}}));
    NS_RETURN_IF_ERROR(add_actions(
        s2,
        {{"人群分层",
          "按 RFM 把沉睡 30 天以上的老客分为高、中、低价值三层",
          "张伟",
          -27,
          -24,
          "done",
          {{"engineer_days", 2}},
          "三层人群包每天自动更新，可在人群管理中查看",
          {},
          {{-24, "人群包上线：高价值老客约占 15%"}}},
         {"利益点设计",
          "召回专享券：满 99 减 30；高价值老客满 199 减 60",
          "孙悦",
          -26,
          -23,
          "done",
          {{"budget", 80000}, {"currency", "CNY"}},
          "券成本率 ≤ 8%，核销率 ≥ 20%",
          {},
          {}},
         {"分层触达",
          "短信 + App 推送分批触达；高价值老客由企业微信专属顾问一对一联系",
          "张伟",
          -kDemoRecallDays,
          4,
          "in_progress",
          {{"budget", 30000}, {"currency", "CNY"}, {"channels", {"sms", "push", "wecom"}}, {"note", "短信 0.05 元/条"}},
          "沉睡老客触达率 ≥ 95%，打开率 ≥ 25%",
          {0, 1},
          {{-kDemoRecallDays, "第一批短信与推送已发出"}, {-9, "企业微信顾问跟进高价值老客，回访率约 50%"}}},
         {"承接页",
          "召回落地页：从短信和推送打开 App 直达专享券与“猜你喜欢”",
          "刘洋",
          -10,
          8,
          "in_progress",
          {{"engineer_days", 8}},
          "落地页到加购转化率 ≥ 25%",
          {1},
          {{-2, "落地页开发完成，测试中"}}},
         {"效果监控",
          "召回效果日报：按触达渠道拆分复购率，低于 13.5% 时预警",
          "张伟",
          5,
          9,
          "not_started",
          {{"engineer_days", 1}},
          "日报每天 9:00 前推送到运营群",
          {2},
          {}}}));

    // ---- KPIs (POST /api/v1/kpis): the scenarios' goals, and two monitoring-only KPIs
    NS_ASSIGN_OR_RETURN(
        int64_t k_first_order,
        ops.kpis.Create(who,
                        json{{"name", "新用户 7 日首单转化率 / New-user first-order conversion (7 days)"},
                             {"scenario_id", s1},
                             {"query",
                              {{"kind", "funnel"},
                               {"steps", json::array({Step("register"), Step("add_to_cart"), Step("pay")})},
                               {"window_seconds", 7 * 86400}}},
                             {"reduce", {{"from_step", 1}, {"to_step", 3}}},
                             {"target", 0.2},
                             {"period", {{"type", "custom"}, {"from", s1_period["from"]}, {"to", s1_period["to"]}}},
                             {"owner", "李娜"},
                             {"description",
                              "注册后 7 天内完成首笔支付的新用户占比 / share of new users who pay within 7 days "
                              "of signing up"},
                             {"dimensions", json::array({"channel", "platform"})}}));
    NS_ASSIGN_OR_RETURN(
        int64_t k_recall,
        ops.kpis.Create(
            who, json{{"name", "召回 7 日复购率 / Win-back repurchase rate (7 days)"},
                      {"scenario_id", s2},
                      {"query",
                       {{"kind", "funnel"},
                        {"steps", json::array({Step("recall_touch", winback), Step("app_launch"), Step("pay")})},
                        {"window_seconds", 7 * 86400}}},
                      {"reduce", {{"from_step", 1}, {"to_step", 3}}},
                      {"target", 0.15},
                      {"period", {{"type", "custom"}, {"from", s2_period["from"]}, {"to", s2_period["to"]}}},
                      {"owner", "张伟"},
                      {"description",
                       "被召回触达的老客中，7 天内回到 App 并支付的占比 / share of touched customers who come back "
                       "and pay within 7 days"},
                      {"dimensions", json::array({"touch_channel", "channel", "platform"})}}));
    NS_RETURN_IF_ERROR(
        ops.scenarios.Patch(who, s1,
                            json{{"goal",
                                  {{"metric", "新用户 7 日首单转化率 / first-order conversion within 7 days"},
                                   {"target", 0.2},
                                   {"kpi_id", k_first_order}}}}));
    NS_RETURN_IF_ERROR(
        ops.scenarios.Patch(who, s2,
                            json{{"goal",
                                  {{"metric", "召回 7 日复购率 / repurchase within 7 days of the recall"},
                                   {"target", 0.15},
                                   {"kpi_id", k_recall}}}}));
    // GMV and DAU: monitoring-only KPIs. Their targets are set month by month below.
    NS_ASSIGN_OR_RETURN(
        int64_t k_gmv,
        ops.kpis.Create(who,
                        json{{"name", "日均 GMV / Average daily GMV"},
                             {"query",
                              {{"kind", "trends"},
                               {"series", json::array({{{"event", "pay"}, {"math", "sum"}, {"property", "amount"}}})}}},
                             {"reduce", {{"series", 0}, {"op", "avg"}}},
                             {"period", {{"type", "month"}}},
                             {"owner", "周敏"},
                             {"unit", "¥"},
                             {"description", "本月每天支付金额的平均值 / mean daily paid amount this month"},
                             {"dimensions", json::array({"channel", "platform"})}}));
    NS_ASSIGN_OR_RETURN(
        int64_t k_dau,
        ops.kpis.Create(
            who,
            json{{"name", "日活跃用户 / Daily active users"},
                 {"query", {{"kind", "trends"}, {"series", json::array({{{"event", "app_launch"}, {"math", "dau"}}})}}},
                 {"reduce", {{"series", 0}, {"op", "avg"}}},
                 {"period", {{"type", "month"}}},
                 {"owner", "周敏"},
                 {"description", "本月每天打开 App 的人数的平均值 / mean daily users opening the app this month"},
                 {"dimensions", json::array({"channel", "platform"})}}));
    const std::vector<int64_t> kpi_ids{k_first_order, k_recall, k_gmv, k_dau};

    // ---- alert rules (POST /api/v1/alert-rules). No notification channel: see docs/decisions.md.
    json rules = json::array();
    for (const json& body : {json{{"kpi_id", k_first_order},
                                  {"type", "below_target"},
                                  {"threshold_pct", 10},
                                  {"name", "首单转化率低于目标 10% / First-order conversion 10% below target"}},
                             json{{"kpi_id", k_recall},
                                  {"type", "below_target"},
                                  {"threshold_pct", 10},
                                  {"name", "召回复购率低于目标 10% / Win-back repurchase 10% below target"}},
                             json{{"kpi_id", k_gmv},
                                  {"type", "change"},
                                  {"compare", "dod"},
                                  {"threshold_pct", 25},
                                  {"name", "GMV 日环比下跌 25% / GMV down 25% day over day"}}}) {
      NS_ASSIGN_OR_RETURN(int64_t id, ops.alerts.CreateRule(who, body));
      rules.push_back(id);
    }

    // ---- history: one snapshot per past day, stamped at that day's snapshot time, as the
    // daily job would have left them; then today's daily job (POST /api/v1/jobs/daily). GMV
    // and DAU get their target at the start of each month, as a team sets it: the last week
    // of the month before and a growth goal (PATCH /api/v1/kpis/{id}).
    NS_ASSIGN_OR_RETURN(ProjectSettings settings, ops.Settings(project));
    NS_ASSIGN_OR_RETURN(int snapshot_minute, ParseClock(settings.snapshot_time, "snapshot_time"));
    auto set_month_target = [&](int64_t id, double growth, int32_t month_start) -> Status {
      NS_ASSIGN_OR_RETURN(KpiDoc doc, ops.kpis.LoadDoc(project, id));
      NS_ASSIGN_OR_RETURN(auto last_week,
                          ops.kpis.Evaluate(project, id, doc, PeriodRange{month_start - 7, month_start - 1}));
      return ops.kpis.Patch(who, id, json{{"target", RoundTarget(last_week[""].Value() * growth)}});
    };
    for (int64_t id : kpi_ids) {
      const double growth = id == k_gmv ? kDemoGmvGrowthGoal : id == k_dau ? kDemoDauGrowthGoal : 0;
      int32_t target_month = INT32_MIN;
      for (int back = kDemoHistoryDays; back >= 0; back--) {
        const int32_t d = today - back;
        if (growth > 0) {
          NS_ASSIGN_OR_RETURN(PeriodRange month, Kpis::CurrentPeriod(json{{"type", "month"}}, d));
          if (month.from != target_month) NS_RETURN_IF_ERROR(set_month_target(id, growth, month.from));
          target_month = month.from;
        }
        if (back > 0)
          NS_RETURN_IF_ERROR(
              ops.kpis.BackfillSnapshot(project, id, d, p->tz.LocalToUtcMs(d, snapshot_minute * 60'000LL)));
      }
    }
    NS_ASSIGN_OR_RETURN(json daily, ops.RunDaily(project));
    if (!daily["errors"].empty()) return Internal("demo daily job: " + daily["errors"].dump());
    NS_RETURN_IF_ERROR(ops.MarkJobDoneToday(project, "daily"));  // not again today
    summary = {{"accounts", json::array({kDemoOperatorEmail, kDemoViewerEmail})},
               {"cohorts", json::array({new_users, lapsed})},
               {"scenarios", json::array({s1, s2})},
               {"actions", actions_created},
               {"kpis", kpi_ids},
               {"history_days", kDemoHistoryDays},
               {"alert_rules", rules},
               {"daily_job", daily}};
    return Status::OK();
  });
  NS_RETURN_IF_ERROR(st);
  return summary;
}

}  // namespace ns
