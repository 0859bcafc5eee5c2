#include "ops/report_tables.h"

#include <xlsxwriter.h>

#include <unistd.h>
#include <cstdio>

#include "core/csv_text.h"
#include "core/file_util.h"
#include "core/uuid.h"

namespace ns {

using nlohmann::json;

namespace {

struct Heading {
  const char* zh;
  const char* en;
};

std::string H(const Heading& h, const std::string& lang) { return lang == "zh" ? h.zh : h.en; }

std::string Text(const json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_array()) {
    std::string s;
    for (auto& x : v) s += (s.empty() ? "" : "; ") + Text(x);
    return s;
  }
  if (v.is_object()) {
    if (v.contains("description")) return Text(v["description"]);
    if (v.contains("metric")) {
      std::string s = Text(v["metric"]);
      if (v.contains("target")) s += " \u2265 " + Text(v["target"]);
      if (v.contains("period") && v["period"].is_string()) s += " (" + v["period"].get<std::string>() + ")";
      return s;
    }
    if (v.contains("from") && v.contains("to")) return Text(v["from"]) + " ~ " + Text(v["to"]);
    if (v.contains("cohort_id")) return "cohort " + v["cohort_id"].dump();
    return v.dump();
  }
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.6g", v.get<double>());
    return buf;
  }
  return v.dump();
}

TableCell Num(const json& v) {
  if (v.is_number()) return v.get<double>();
  return std::monostate{};
}

std::string StatusLabel(const std::string& s, const std::string& lang) {
  static const std::map<std::string, std::pair<const char*, const char*>> k = {
      {"not_started", {"未开始", "Not started"}},
      {"in_progress", {"进行中", "In progress"}},
      {"done", {"已完成", "Done"}},
      {"delayed", {"延期", "Delayed"}},
      {"cancelled", {"已取消", "Cancelled"}},
      {"draft", {"草稿", "Draft"}},
      {"active", {"进行中", "Active"}},
      {"paused", {"暂停", "Paused"}},
      {"final", {"已定稿", "Final"}},
      {"green", {"绿", "Green"}},
      {"yellow", {"黄", "Yellow"}},
      {"red", {"红", "Red"}}};
  auto it = k.find(s);
  if (it == k.end()) return s;
  return lang == "zh" ? it->second.first : it->second.second;
}

std::string Resources(const json& r, const std::string& lang) {
  if (!r.is_object()) return Text(r);
  std::string s;
  auto add = [&](const std::string& x) { s += (s.empty() ? "" : "; ") + x; };
  if (r.contains("budget"))
    add(std::string(lang == "zh" ? "预算 " : "budget ") + Text(r["budget"]) +
        (r.contains("currency") ? " " + Text(r["currency"]) : ""));
  if (r.contains("engineer_days"))
    add(std::string(lang == "zh" ? "研发 " : "engineering ") + Text(r["engineer_days"]) +
        (lang == "zh" ? " 人天" : " engineer-days"));
  if (r.contains("channels")) add(std::string(lang == "zh" ? "渠道 " : "channels ") + Text(r["channels"]));
  if (r.contains("note")) add(Text(r["note"]));
  return s;
}

// The key user group: its description and, for a cohort, the cohort's name and its size now
// ("key_user_group_cohort" of the scenario's answer), in the project's time zone.
std::string KeyUserGroup(const json& sc, const std::string& lang, const TimeZone& tz) {
  const json& g = sc.contains("key_user_group") ? sc["key_user_group"] : json();
  if (!sc.contains("key_user_group_cohort")) return Text(g);
  const json& c = sc["key_user_group_cohort"];
  const bool zh = lang == "zh";
  std::string id = "#" + Text(c.value("id", json()));
  std::string s;
  if (c.value("deleted", false)) {
    s = zh ? "人群 " + id + "（已删除）" : "cohort " + id + " (deleted)";
  } else {
    s = Text(c.value("name", json()));
    std::string detail = zh ? "人群 " + id : "cohort " + id;
    if (c.contains("size") && c["size"].is_number_integer()) {
      detail += (zh ? "，" : ", ") + Text(c["size"]) + (zh ? " 人" : " persons");
      auto at = ParseIsoTimestamp(Text(c.value("as_of", json())), tz);
      if (at.ok()) detail += (zh ? "，截至 " : " as of ") + tz.FormatLocal(*at).substr(0, 16);
    }
    s += zh ? "（" + detail + "）" : " (" + detail + ")";
  }
  if (g.is_object() && g.contains("description") && !Text(g["description"]).empty())
    s = Text(g["description"]) + "; " + s;
  return s;
}

}  // namespace

std::vector<ReportTable> ScenarioTables(const json& sc, const json& kpis, const json& ev, const std::string& lang,
                                        const TimeZone& tz) {
  std::vector<ReportTable> out;
  {
    ReportTable t;
    t.key = "requirements";
    t.title = lang == "zh" ? "场景需求表" : "Scenario requirements";
    for (const Heading& h : {Heading{"场景名称", "Scenario"},
                             {"业务模块", "Business module"},
                             {"核心目标", "Core goal"},
                             {"关键用户群", "Key user group"},
                             {"用户痛点", "User pain points"},
                             {"成功标准", "Success criteria"},
                             {"负责人", "Owner"},
                             {"周期", "Period"},
                             {"状态", "Status"}})
      t.headers.push_back(H(h, lang));
    t.rows.push_back({Text(sc["name"]), Text(sc["business_module"]), Text(sc["goal"]), KeyUserGroup(sc, lang, tz),
                      Text(sc["pain_points"]), Text(sc["success_criteria"]), Text(sc["owner"]), Text(sc["period"]),
                      StatusLabel(Text(sc["status"]), lang)});
    out.push_back(std::move(t));
  }
  {
    ReportTable t;
    t.key = "process";
    t.title = lang == "zh" ? "流程设计表" : "Process design";
    for (const Heading& h : {Heading{"编号", "ID"},
                             {"策略方向", "Strategy"},
                             {"具体动作", "Action"},
                             {"负责人", "Owner"},
                             {"开始日期", "Start date"},
                             {"截止日期", "Due date"},
                             {"所需资源", "Resources"},
                             {"交付标准", "Delivery standard"},
                             {"状态", "Status"},
                             {"依赖", "Depends on"},
                             {"进展", "Progress"}})
      t.headers.push_back(H(h, lang));
    for (auto& a : sc["actions"]) {
      std::string prog;
      for (auto& p : a["progress"])
        prog += (prog.empty() ? "" : "\n") + Text(p.value("date", json(""))) + " " + Text(p["note"]);
      t.rows.push_back({static_cast<double>(a["id"].get<int64_t>()), Text(a["strategy"]), Text(a["action"]),
                        Text(a["owner"]), Text(a["start_date"]), Text(a["due_date"]), Resources(a["resources"], lang),
                        Text(a["delivery_standard"]), StatusLabel(Text(a["status"]), lang), Text(a["depends_on"]),
                        prog});
    }
    out.push_back(std::move(t));
  }
  {
    ReportTable t;
    t.key = "monitoring";
    t.title = lang == "zh" ? "执行监控表" : "Execution monitoring";
    for (const Heading& h : {Heading{"场景", "Scenario"},
                             {"指标", "KPI"},
                             {"目标值", "Target"},
                             {"实际值", "Actual"},
                             {"达成率", "Achievement rate"},
                             {"状态灯", "Light"},
                             {"变化原因", "Reason for change"},
                             {"负责人", "Owner"},
                             {"更新时间", "Updated at"}})
      t.headers.push_back(H(h, lang));
    t.percent_columns.push_back(H({"达成率", "Achievement rate"}, lang));
    for (auto& k : kpis) {
      std::string reason = Text(k.value("reason", json("")));
      std::string autor = Text(k.value("auto_reason", json("")));
      if (!autor.empty())
        reason += (reason.empty() ? "" : "\n") + std::string(lang == "zh" ? "[自动] " : "[auto] ") + autor;
      t.rows.push_back({Text(sc["name"]), Text(k["name"]), Num(k["target"]), Num(k.value("actual", json())),
                        Num(k.value("achievement_rate", json())), StatusLabel(Text(k.value("light", json(""))), lang),
                        reason, Text(k["owner"]),
                        k.contains("refreshed_at")
                            ? TableCell(tz.FormatLocal(k["refreshed_at"].get<int64_t>()).substr(0, 16))
                            : TableCell()});
    }
    out.push_back(std::move(t));
  }
  {
    ReportTable t;
    t.key = "evaluation";
    t.title = lang == "zh" ? "效果评估表" : "Effect evaluation";
    for (const Heading& h : {Heading{"周期", "Period"},
                             {"指标", "KPI"},
                             {"目标", "Target"},
                             {"结果", "Result"},
                             {"达成率", "Achievement"},
                             {"做得好的", "What worked"},
                             {"问题", "Problems"},
                             {"下一步措施", "Next measures"},
                             {"负责人", "Owner"}})
      t.headers.push_back(H(h, lang));
    t.percent_columns.push_back(H({"达成率", "Achievement"}, lang));
    json ks = ev.value("kpis", json::array());
    if (ks.empty()) ks.push_back(json::object());
    for (auto& k : ks)
      t.rows.push_back({Text(ev.value("period", json())), Text(k.value("name", json(""))),
                        Num(k.value("target", json())), Num(k.value("actual", json())),
                        Num(k.value("achievement_rate", json())), Text(ev.value("what_worked", json(""))),
                        Text(ev.value("problems", json(""))), Text(ev.value("next_measures", json(""))),
                        Text(ev.value("owner", json("")))});
    out.push_back(std::move(t));
  }
  return out;
}

std::string TableToCsv(const ReportTable& t) {
  std::string out(kUtf8Bom);
  AppendCsvRow(out, t.headers);
  for (auto& r : t.rows) {
    std::vector<std::string> cells;
    for (auto& c : r) {
      if (auto d = std::get_if<double>(&c)) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.10g", *d);
        cells.push_back(buf);
      } else if (auto s = std::get_if<std::string>(&c)) {
        cells.push_back(*s);
      } else {
        cells.push_back("");
      }
    }
    AppendCsvRow(out, cells);
  }
  return out;
}

StatusOr<std::string> TablesToXlsx(const std::vector<ReportTable>& tables) {
  char tmpl[] = "/tmp/northstar-export-XXXXXX.xlsx";
  int fd = mkstemps(tmpl, 5);
  if (fd < 0) return Unavailable("cannot create a temporary file for the XLSX export");
  close(fd);
  std::string path = tmpl;
  lxw_workbook* wb = workbook_new(path.c_str());
  if (!wb) {
    unlink(path.c_str());
    return Internal("libxlsxwriter: cannot create workbook");
  }
  lxw_format* head = workbook_add_format(wb);
  format_set_bold(head);
  format_set_bg_color(head, 0xDDEBF7);
  format_set_border(head, LXW_BORDER_THIN);
  format_set_text_wrap(head);
  lxw_format* wrap = workbook_add_format(wb);
  format_set_text_wrap(wrap);
  format_set_align(wrap, LXW_ALIGN_VERTICAL_TOP);
  lxw_format* pct = workbook_add_format(wb);
  format_set_num_format(pct, "0.0%");
  format_set_align(pct, LXW_ALIGN_VERTICAL_TOP);
  for (const auto& t : tables) {
    // Sheet names: at most 31 characters, none of []:*?/\ .
    std::string name = t.title.substr(0, 31);
    lxw_worksheet* ws = workbook_add_worksheet(wb, name.c_str());
    if (!ws) {
      workbook_close(wb);
      unlink(path.c_str());
      return Internal("libxlsxwriter: cannot add sheet '" + name + "'");
    }
    for (size_t c = 0; c < t.headers.size(); c++) {
      worksheet_write_string(ws, 0, static_cast<lxw_col_t>(c), t.headers[c].c_str(), head);
      worksheet_set_column(ws, static_cast<lxw_col_t>(c), static_cast<lxw_col_t>(c), 18, nullptr);
    }
    worksheet_freeze_panes(ws, 1, 0);
    for (size_t r = 0; r < t.rows.size(); r++) {
      for (size_t c = 0; c < t.rows[r].size(); c++) {
        const TableCell& cell = t.rows[r][c];
        auto row = static_cast<lxw_row_t>(r + 1);
        auto col = static_cast<lxw_col_t>(c);
        bool is_pct = c < t.headers.size() && std::find(t.percent_columns.begin(), t.percent_columns.end(),
                                                        t.headers[c]) != t.percent_columns.end();
        if (auto d = std::get_if<double>(&cell))
          worksheet_write_number(ws, row, col, *d, is_pct ? pct : wrap);
        else if (auto s = std::get_if<std::string>(&cell))
          worksheet_write_string(ws, row, col, s->c_str(), wrap);
      }
    }
  }
  lxw_error err = workbook_close(wb);
  if (err != LXW_NO_ERROR) {
    unlink(path.c_str());
    return Internal(std::string("libxlsxwriter: ") + lxw_strerror(err));
  }
  auto bytes = ReadFile(path);
  unlink(path.c_str());
  return bytes;
}

}  // namespace ns
