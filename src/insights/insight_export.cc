#include "insights/insight_export.h"

#include <algorithm>
#include <cstring>
#include <map>

namespace ns {

using nlohmann::json;

namespace {

struct Heading {
  const char* en;
  const char* zh;
  bool percent = false;  // a rate (XLSX shows 0.0%)
};

// The headings of the kinds' tables (QueryKind::table).
const std::map<std::string, Heading>& Headings() {
  static const std::map<std::string, Heading> k = {
      {"date", {"Date", "日期"}},
      {"step", {"Step", "步骤"}},
      {"event", {"Event", "事件"}},
      {"count", {"Persons", "人数"}},
      {"from start", {"Conversion from start", "总体转化率", true}},
      {"from previous", {"Conversion from previous step", "步骤转化率", true}},
      {"median s", {"Median seconds from previous step", "中位转化时长(秒)"}},
      {"cohort", {"Cohort", "同期群"}},
      {"size", {"Cohort size", "同期群人数"}},
      {"segment", {"Segment", "分层"}},
      {"label", {"Label", "名称"}},
      {"persons", {"Persons", "人数"}},
      {"share", {"Share", "占比", true}},
      {"avg_recency_days", {"Avg. recency (days)", "平均最近消费间隔(天)"}},
      {"avg_frequency", {"Avg. frequency", "平均消费频次"}},
      {"avg_monetary", {"Avg. monetary", "平均消费金额"}},
      {"revenue", {"Revenue", "收入"}},
      {"revenue_share", {"Revenue share", "收入占比", true}},
      // lifecycle stages and activities
      {"new", {"New", "新用户"}},
      {"active", {"Active", "活跃"}},
      {"silent", {"Silent", "沉默"}},
      {"churned", {"Churned", "流失"}},
      {"returning", {"Returning", "回访"}},
      {"resurrecting", {"Resurrecting", "回流"}},
      {"dormant", {"Dormant", "沉睡"}},
      // commerce (the ltv table's ltv_k columns pass through)
      {"scope", {"Scope", "范围"}},
      {"gmv", {"GMV", "GMV"}},
      {"refunds", {"Refunds", "退款笔数"}},
      {"refund_amount", {"Refund amount", "退款金额"}},
      {"orders", {"Orders", "订单数"}},
      {"paying_persons", {"Paying persons", "付费人数"}},
      {"active_persons", {"Active persons", "活跃人数"}},
      {"aov", {"AOV", "客单价"}},
      {"paid_conversion_rate", {"Paid conversion", "付费转化率", true}},
      {"first_purchase_conversion", {"First-purchase conversion", "首单转化率", true}},
      {"repurchase_rate", {"Repurchase rate", "复购率", true}},
      {"repurchase_cycle_days", {"Repurchase cycle (days)", "复购周期(天)"}},
      {"cart_abandonment_rate", {"Cart abandonment", "弃购率", true}},
      // trends as one number, stickiness
      {"value", {"Value", "值"}},
      {"intervals", {"Intervals active", "活跃天数"}},
      // funnel visualisations: time to convert, conversion over time, correlation
      {"from s", {"From (seconds)", "起(秒)"}},
      {"to s", {"To (seconds)", "止(秒)"}},
      {"from count", {"Entered", "进入人数"}},
      {"to count", {"Converted", "转化人数"}},
      {"conversion", {"Conversion", "转化率", true}},
      {"event or property", {"Event or property", "事件或属性"}},
      {"success", {"Converted", "转化人数"}},
      {"failure", {"Dropped", "流失人数"}},
      {"odds ratio", {"Odds ratio", "优势比"}},
      {"type", {"Type", "类型"}},
      // paths
      {"source", {"From", "来源"}},
      {"target", {"To", "去向"}},
      {"paths", {"Paths", "路径数"}},
      {"average s", {"Average seconds", "平均时长(秒)"}},
      // channels
      {"channel", {"Channel", "渠道"}},
      {"new_persons", {"New persons", "新增人数"}},
      {"spend", {"Spend", "投放花费"}},
      {"cac", {"CAC", "获客成本"}},
      {"first_order_conversion", {"First-order conversion", "首单转化率", true}},
      {"revenue_cumulative", {"Cumulative revenue", "累计收入"}},
      {"roas", {"ROAS", "ROAS"}},
      {"payback_days", {"Payback (days)", "回本天数"}},
      {"stop_loss", {"Stop-loss", "止损"}},
      // clv
      {"distinct_id", {"Distinct ID", "用户ID"}},
      {"frequency", {"Repeat purchases", "复购次数"}},
      {"recency", {"Recency", "最近复购时点"}},
      {"T", {"Age (T)", "客户年龄(T)"}},
      {"monetary", {"Average value", "平均客单"}},
      {"p_alive", {"P(alive)", "存活概率", true}},
      {"expected_purchases", {"Expected purchases", "预期购买次数"}},
      {"expected_average_value", {"Expected average value", "预期客单价"}},
      {"clv", {"CLV", "预测终身价值"}},
      // referral
      {"invitees", {"Invitees", "受邀人数"}},
      {"clean_invitees", {"Clean invitees", "有效受邀人数"}},
      {"flagged_invitees", {"Flagged invitees", "可疑受邀人数"}},
      {"invitations_sent", {"Invitations sent", "发出邀请数"}},
      {"reward", {"Reward due", "应发奖励"}},
  };
  return k;
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string Text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return v.dump();
}

TableCell Cell(const json& v) {
  if (v.is_number()) return v.get<double>();
  if (v.is_null()) return std::monostate{};
  return Text(v);
}

// At most 31 bytes, cut at a UTF-8 character boundary, without []:*?/\ and apostrophes.
std::string SheetName(const std::string& s) {
  std::string out;
  for (char c : s)
    if (!std::strchr("[]:*?/\\'", c)) out += c;
  if (out.size() > 31) {
    size_t n = 31;
    while (n > 0 && (static_cast<unsigned char>(out[n]) & 0xC0) == 0x80) n--;  // not inside a character
    out.resize(n);
  }
  return out.empty() ? "Sheet" : out;
}

}  // namespace

ReportTable InsightResultTable(const QueryKind& kind, const json& result, const std::string& title,
                               const std::string& lang) {
  const bool zh = lang == "zh";
  ReportTable t;
  t.key = "result";
  t.title = SheetName(title);
  ResultTable rows = kind.table ? kind.table(result) : ResultTable{};
  if (rows.empty()) return t;
  // Retention's period columns are numbered: "Day 3" / "第3天".
  const std::string period = result.value("period", "day");
  const char* unit_en = period == "week" ? "Week " : period == "month" ? "Month " : "Day ";
  const char* unit_zh = period == "week" ? "周" : period == "month" ? "月" : "天";
  for (const json& h : rows[0]) {
    std::string s = Text(h);
    if (kind.name == "retention" && AllDigits(s)) {
      t.headers.push_back(zh ? "第" + s + unit_zh : unit_en + s);
      continue;
    }
    // The LTV table's periods since the first payment: "LTV 3" / "第3期LTV".
    if (kind.name == "ltv" && s.rfind("ltv_", 0) == 0 && AllDigits(s.substr(4))) {
      t.headers.push_back(zh ? "第" + s.substr(4) + "期LTV" : "LTV " + s.substr(4));
      continue;
    }
    auto it = Headings().find(s);
    if (it == Headings().end()) {
      t.headers.push_back(s);
      continue;
    }
    t.headers.push_back(zh ? it->second.zh : it->second.en);
    if (it->second.percent) t.percent_columns.push_back(t.headers.back());
  }
  for (size_t r = 1; r < rows.size(); r++) {
    std::vector<TableCell> cells;
    for (const json& v : rows[r]) cells.push_back(Cell(v));
    t.rows.push_back(std::move(cells));
  }
  return t;
}

ReportTable InsightAboutTable(int64_t id, const InsightDoc& doc, const json& query_as_run, int64_t computed_at,
                              const TimeZone& tz, const std::string& lang) {
  const bool zh = lang == "zh";
  ReportTable t;
  t.key = "about";
  t.title = zh ? "查询说明" : "About";
  t.headers = {zh ? "项目" : "Field", zh ? "内容" : "Value"};
  std::string tags;
  for (const auto& x : doc.tags) tags += (tags.empty() ? "" : ", ") + x;
  auto row = [&](const char* en, const char* zh_label, std::string v) {
    t.rows.push_back({std::string(zh ? zh_label : en), std::move(v)});
  };
  row("Insight", "洞察", id > 0 ? "#" + std::to_string(id) + " " + doc.name : doc.name);  // 0: unsaved
  row("Description", "描述", doc.description);
  row("Kind", "类型", doc.kind);
  row("Tags", "标签", tags);
  if (query_as_run.contains("date_from")) row("From", "开始日期", Text(query_as_run["date_from"]));
  if (query_as_run.contains("date_to")) row("To", "结束日期", Text(query_as_run["date_to"]));
  row("Time zone", "时区", tz.name());
  row("Computed at", "计算时间", tz.FormatLocal(computed_at));
  row("Query", "查询", query_as_run.dump());
  return t;
}

}  // namespace ns
