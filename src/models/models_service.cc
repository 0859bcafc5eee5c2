#include "models/models_service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/checksum.h"
#include "core/file_util.h"
#include "core/time_zone.h"
#include "models/referral_attributes.h"
#include "query/person_models.h"
#include "query/query_kind.h"

namespace ns {

using nlohmann::json;

// What one run computed per person, as installed and as the API shows it.
struct ModelsService::Scored {
  int32_t as_of_day = 0;
  std::vector<uint32_t> persons;  // churn: ascending person id
  std::vector<float> risk;
  std::vector<uint8_t> decile;
  std::vector<std::array<FeatureContribution, kTopFeatures>> top;
  std::vector<uint32_t> clv_persons;  // CLV customers: ascending person id
  std::vector<float> clv, p_alive;    // clv NaN without a value model
};

namespace {

constexpr char kScoresMagic[8] = {'N', 'S', 'C', 'H', 'U', 'R', 'N', '1'};

template <typename T>
void Put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

template <typename T>
bool Take(std::string_view& in, T* v) {
  if (in.size() < sizeof *v) return false;
  std::memcpy(v, in.data(), sizeof *v);
  in.remove_prefix(sizeof *v);
  return true;
}

// v to `digits` decimals (the nearest double to the decimal, as JSON prints it).
double Round(double v, int digits) {
  const double p = std::pow(10.0, digits);
  return std::round(v * p) / p;
}

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

json TopFeaturesJson(const std::array<FeatureContribution, kTopFeatures>& top) {
  json out = json::array();
  for (const FeatureContribution& c : top)
    out.push_back(
        {{"feature", ChurnFeatureNames()[static_cast<size_t>(c.feature)]}, {"contribution", Round(c.contribution, 4)}});
  return out;
}

}  // namespace

StatusOr<std::unique_ptr<ModelsService>> ModelsService::Open(ProjectRegistry& registry, PeopleService& people) {
  std::unique_ptr<ModelsService> s(new ModelsService(registry, people));
  std::vector<std::string> projects;
  for (const auto& info : registry.List()) {
    s->Load(info.name);
    projects.push_back(info.name);
  }
  // The referral attributes are derived from the events in one pass (not saved), so they are
  // computed again at each start — in the background, one project after another, so that a
  // big store does not delay serving (docs/decisions.md). Until a project's are in, its
  // persons have none (as persons outside the invite graph).
  {
    MutexLock l(&s->mu_);
    for (const std::string& name : projects) s->states_[name].referral_pending = true;
  }
  ModelsService* self = s.get();
  MutexLock l(&s->mu_);
  s->workers_.emplace_back([self, projects] {
    for (const std::string& name : projects) {
      if (self->stopping_.load()) break;
      const int64_t started = NowMs();
      Status st;
      {
        MutexLock run_lock(&self->run_mu_);  // not beside a training (which refreshes them too)
        st = self->RefreshReferral(name);
      }
      if (st.ok()) {
        spdlog::info("models: referral attributes of project {} computed in {} ms", name, NowMs() - started);
      } else {
        spdlog::warn("models: referral attributes of project {} not computed: {}", name, st.ToString());
      }
      MutexLock l(&self->mu_);
      self->states_[name].referral_pending = false;
    }
  });
  return s;
}

ModelsService::~ModelsService() {
  stopping_.store(true);  // the start-up refresh stops after the project it is on
  std::vector<std::thread> workers;
  {
    MutexLock l(&mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers)
    if (t.joinable()) t.join();
}

std::string ModelsService::Dir(const std::string& project) const { return registry_.data_dir() + "/models/" + project; }

void ModelsService::Load(const std::string& project) {
  const std::string dir = Dir(project);
  if (!FileExists(dir + "/churn-model.json") || !FileExists(dir + "/churn-scores.bin")) return;
  auto summary_text = ReadFile(dir + "/churn-model.json");
  auto bytes = ReadFile(dir + "/churn-scores.bin");
  auto fail = [&](const std::string& why) {
    spdlog::warn("models: saved churn run of project {} not loaded ({}); the next daily job recomputes it", project,
                 why);
  };
  if (!summary_text.ok() || !bytes.ok()) return fail("unreadable");
  json doc = json::parse(*summary_text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("summary")) return fail("malformed summary");
  std::string_view in(*bytes);
  if (in.size() < sizeof kScoresMagic + 4 || std::memcmp(in.data(), kScoresMagic, sizeof kScoresMagic) != 0)
    return fail("not a scores file");
  uint32_t crc = 0;
  std::memcpy(&crc, in.data() + in.size() - 4, 4);
  if (Crc32c(in.substr(0, in.size() - 4)) != crc) return fail("checksum mismatch");
  in = in.substr(sizeof kScoresMagic, in.size() - sizeof kScoresMagic - 4);
  auto sc = std::make_shared<Scored>();
  uint32_t n = 0, m = 0;
  if (!Take(in, &sc->as_of_day) || !Take(in, &n)) return fail("truncated");
  for (uint32_t i = 0; i < n; i++) {
    uint32_t p;
    float r;
    uint8_t d;
    std::array<FeatureContribution, kTopFeatures> top;
    bool ok = Take(in, &p) && Take(in, &r) && Take(in, &d);
    for (auto& c : top) {
      uint8_t f = 0;
      ok = ok && Take(in, &f) && Take(in, &c.contribution);
      c.feature = f < kChurnFeatureCount ? f : 0;
    }
    if (!ok) return fail("truncated");
    sc->persons.push_back(p);
    sc->risk.push_back(r);
    sc->decile.push_back(d);
    sc->top.push_back(top);
  }
  if (!Take(in, &m)) return fail("truncated");
  for (uint32_t i = 0; i < m; i++) {
    uint32_t p;
    float c, a;
    if (!Take(in, &p) || !Take(in, &c) || !Take(in, &a)) return fail("truncated");
    sc->clv_persons.push_back(p);
    sc->clv.push_back(c);
    sc->p_alive.push_back(a);
  }
  auto p = registry_.OpenProject(project);
  if (!p.ok()) return fail(p.status().ToString());
  {
    MutexLock l(&mu_);
    ProjectState& st = states_[project];
    st.status = "ready";
    st.summary = doc["summary"];
    st.scored = std::move(sc);
  }
  Install(**p, project);
}

Status ModelsService::Save(const std::string& project, const json& summary, const std::string& trees,
                           const Scored& sc) {
  const std::string dir = Dir(project);
  NS_RETURN_IF_ERROR(MakeDirs(dir));
  std::string out(kScoresMagic, sizeof kScoresMagic);
  Put(out, sc.as_of_day);
  Put(out, static_cast<uint32_t>(sc.persons.size()));
  for (size_t i = 0; i < sc.persons.size(); i++) {
    Put(out, sc.persons[i]);
    Put(out, sc.risk[i]);
    Put(out, sc.decile[i]);
    for (const auto& c : sc.top[i]) {
      Put(out, static_cast<uint8_t>(c.feature));
      Put(out, c.contribution);
    }
  }
  Put(out, static_cast<uint32_t>(sc.clv_persons.size()));
  for (size_t i = 0; i < sc.clv_persons.size(); i++) {
    Put(out, sc.clv_persons[i]);
    Put(out, sc.clv[i]);
    Put(out, sc.p_alive[i]);
  }
  Put(out, Crc32c(out));
  NS_RETURN_IF_ERROR(WriteFileAtomic(dir + "/churn-scores.bin", out));
  // The trees beside the summary (XGBoost's JSON model), for inspection and later scoring.
  json doc = {{"summary", summary}, {"trees", json::parse(trees, nullptr, false)}};
  return WriteFileAtomic(dir + "/churn-model.json", doc.dump());
}

void ModelsService::Install(Project& p, const std::string& project) {
  MutexLock install_lock(&install_mu_);
  std::shared_ptr<const Scored> scored;
  std::shared_ptr<const PersonColumns> referral;
  {
    MutexLock l(&mu_);
    const ProjectState& st = states_[project];
    scored = st.scored;
    referral = st.referral;
  }
  auto cols = std::make_shared<PersonColumns>();
  if (referral) *cols = *referral;
  if (scored) {
    PersonColumns churn = ScoredColumns(*scored);
    cols->insert(churn.begin(), churn.end());
  }
  p.store->SetComputedPersonColumns(std::move(cols));
}

Status ModelsService::RefreshReferral(const std::string& project) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, people_.Settings(project));
  std::shared_ptr<const StoreSnapshot> snap = p->store->Snapshot();
  NS_ASSIGN_OR_RETURN(InviteGraph graph,
                      BuildInviteGraph(*snap, settings, NowMs() + 1, FraudRules{},
                                       [&](std::string_view id) { return p->store->FindDistinctId(id); }));
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  auto cols = std::make_shared<const PersonColumns>(ReferralPersonColumns(ComputeReferralAttributes(graph)));
  {
    MutexLock l(&mu_);
    states_[project].referral = std::move(cols);
  }
  Install(*p, project);
  return Status::OK();
}

PersonColumns ModelsService::ScoredColumns(const Scored& sc) {
  auto risk = std::make_shared<PersonColumn>(), decile = std::make_shared<PersonColumn>();
  auto clv = std::make_shared<PersonColumn>(), alive = std::make_shared<PersonColumn>();
  for (size_t i = 0; i < sc.persons.size(); i++) {
    risk->Set(sc.persons[i], PropValue::Num(Round(sc.risk[i], 4)));
    decile->Set(sc.persons[i], PropValue::Num(sc.decile[i]));
  }
  for (size_t i = 0; i < sc.clv_persons.size(); i++) {
    if (std::isfinite(sc.clv[i])) clv->Set(sc.clv_persons[i], PropValue::Num(Round(sc.clv[i], 2)));
    if (std::isfinite(sc.p_alive[i])) alive->Set(sc.clv_persons[i], PropValue::Num(Round(sc.p_alive[i], 4)));
  }
  PersonColumns cols;
  cols["$churn_risk"] = risk;
  cols["$churn_risk_decile"] = decile;
  cols["$clv"] = clv;
  cols["$p_alive"] = alive;
  return cols;
}

Status ModelsService::Run(const std::string& project) {
  MutexLock run_lock(&run_mu_);
  // The referral attributes need no training: refreshed whatever the churn model's outcome.
  if (Status st = RefreshReferral(project); !st.ok())
    spdlog::warn("models: referral attributes of project {} not refreshed: {}", project, st.ToString());
  const int64_t started = NowMs();
  auto body = [&]() -> StatusOr<json> {
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
    NS_ASSIGN_OR_RETURN(PeopleSettings settings, people_.Settings(project));
    QueryOptions qo;
    qo.people = &settings;
    QueryScope scope(*p->store, p->tz, qo);
    const QueryContext& ctx = scope.ctx();
    const int32_t today = p->tz.LocalDay(NowMs());
    std::optional<int32_t> last = LastCompleteDay(ctx.snap, p->tz, today);
    if (!last) return FailedPrecondition("no events to train the churn model on");
    ChurnTrainOptions o;
    o.features.max_recency_days = settings.churn_days;
    NS_ASSIGN_OR_RETURN(ChurnModelRun run, TrainChurnModel(ctx, *last, o));
    ClvScores clv = ScoreClv(ctx, *last, 365);
    NS_RETURN_IF_ERROR(scope.status());

    auto sc = std::make_shared<Scored>();
    sc->as_of_day = run.scores.as_of_day;
    sc->persons = std::move(run.scores.persons);
    sc->risk = std::move(run.scores.risk);
    sc->decile = std::move(run.scores.decile);
    sc->top = std::move(run.scores.top);
    sc->clv_persons = clv.persons;
    for (size_t i = 0; i < clv.persons.size(); i++) {
      sc->clv.push_back(static_cast<float>(clv.clv[i]));
      sc->p_alive.push_back(static_cast<float>(clv.p_alive[i]));
    }

    json importance = json::array();
    double total = 0;
    for (double v : run.importance) total += v;
    std::vector<int> order(kChurnFeatureCount);
    for (int k = 0; k < kChurnFeatureCount; k++) order[static_cast<size_t>(k)] = k;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      return run.importance[static_cast<size_t>(a)] > run.importance[static_cast<size_t>(b)];
    });
    for (int k : order)
      importance.push_back({{"feature", ChurnFeatureNames()[static_cast<size_t>(k)]},
                            {"importance", Round(run.importance[static_cast<size_t>(k)], 5)},
                            {"share", total > 0 ? Round(run.importance[static_cast<size_t>(k)] / total, 4) : 0.0}});
    json distribution = json::array();
    std::array<uint64_t, 10> bins{};
    double mean = 0;
    uint64_t high = 0;
    for (size_t i = 0; i < sc->risk.size(); i++) {
      bins[std::min<size_t>(9, static_cast<size_t>(std::llround(sc->risk[i] * 1e4) / 1000))]++;  // as $churn_risk reads
      mean += sc->risk[i];
      high += sc->decile[i] == 10;
    }
    for (size_t b = 0; b < 10; b++)
      distribution.push_back({{"from", Round(b / 10.0, 1)}, {"to", Round((b + 1) / 10.0, 1)}, {"persons", bins[b]}});
    const double eval_rate = static_cast<double>(run.eval_churned) / static_cast<double>(run.eval_rows);
    json summary = {
        {"trained_at", FormatIsoUtc(started)},
        {"trained_at_ms", started},
        {"took_ms", NowMs() - started},
        {"T", FormatDate(run.train_as_of)},
        {"evaluation_T", FormatDate(run.eval_as_of)},
        {"scored_as_of", FormatDate(sc->as_of_day)},
        {"horizon_days", run.horizon_days},
        {"training_size", run.train_rows},
        {"evaluation_size", run.eval_rows},
        {"training",
         {{"persons", run.train_rows},
          {"churned", run.train_churned},
          {"churn_rate", Round(static_cast<double>(run.train_churned) / static_cast<double>(run.train_rows), 4)},
          {"auc", Num(Round(run.train_auc, 4))}}},
        {"evaluation",
         {{"persons", run.eval_rows}, {"churned", run.eval_churned}, {"churn_rate", Round(eval_rate, 4)}}},
        {"auc", Num(Round(run.auc, 4))},
        {"precision_at_10", Num(Round(run.precision_at_10, 4))},
        {"lift_at_10", Num(Round(run.precision_at_10 / eval_rate, 3))},
        {"feature_importance", importance},
        {"scored",
         {{"persons", sc->persons.size()},
          {"high_risk_persons", high},
          {"mean_risk",
           sc->risk.empty() ? json(nullptr) : json(Round(mean / static_cast<double>(sc->risk.size()), 4))}}},
        {"risk_distribution", distribution},
        {"clv", {{"customers", clv.persons.size()}, {"as_of", FormatDate(*last)}, {"horizon_days", 365}}},
        {"params",
         {{"rounds", o.trees.rounds},
          {"max_depth", o.trees.max_depth},
          {"eta", o.trees.eta},
          {"min_child_weight", o.trees.min_child_weight},
          {"seed", o.trees.seed},
          {"nthread", o.trees.threads},
          {"population_max_recency_days", o.features.max_recency_days}}},
    };
    NS_ASSIGN_OR_RETURN(std::string trees, run.model->Save());
    if (Status st = Save(project, summary, trees, *sc); !st.ok())
      spdlog::warn("models: churn run of project {} not saved: {}", project, st.ToString());
    {
      MutexLock l(&mu_);
      states_[project].scored = std::move(sc);
    }
    Install(*p, project);
    return summary;
  };
  StatusOr<json> out = [&]() -> StatusOr<json> {
    try {
      return body();
    } catch (const std::exception& e) {  // XGBoost or the JSON library: a failed run, never a crash
      return Internal(std::string("churn model: unexpected error: ") + e.what());
    }
  }();
  MutexLock l(&mu_);
  ProjectState& st = states_[project];
  st.job_id = 0;
  if (out.ok()) {
    st.status = "ready";
    st.summary = std::move(out).value();
    st.error.clear();
    return Status::OK();
  }
  st.status = "failed";
  st.error = out.status().message();
  st.failed_at_ms = NowMs();
  return out.status();
}

StatusOr<json> ModelsService::ChurnStatus(const std::string& project) {
  NS_RETURN_IF_ERROR(registry_.OpenProject(project).status());
  MutexLock l(&mu_);
  const ProjectState& st = states_[project];
  json out = {{"model", "churn"}, {"status", st.status}};
  if (st.summary.is_object()) {
    for (auto it = st.summary.begin(); it != st.summary.end(); ++it) out[it.key()] = it.value();
  } else {
    out["trained_at"] = nullptr;
    out["auc"] = nullptr;
    out["precision_at_10"] = nullptr;
    out["feature_importance"] = json::array();
  }
  out["job"] = st.job_id ? json{{"job_id", st.job_id},
                                {"status", "training"},
                                {"started_at", FormatIsoUtc(st.job_started_ms)},
                                {"by", st.job_actor}}
                         : json(nullptr);
  out["error"] = st.error.empty() ? json(nullptr) : json(st.error);
  out["features"] = ChurnFeatureNames();
  // The start-up computation of the referral attributes (in the background): "computing"
  // until it is done, then "ready" (or "none" if it failed and no churn run has made them).
  out["referral_attributes"] = st.referral ? "ready" : st.referral_pending ? "computing" : "none";
  return out;
}

StatusOr<json> ModelsService::StartChurnTraining(const std::string& project, const std::string& actor) {
  NS_RETURN_IF_ERROR(registry_.OpenProject(project).status());
  MutexLock l(&mu_);
  ProjectState& st = states_[project];
  if (st.job_id) return json{{"job_id", st.job_id}, {"status", "training"}, {"started", false}};
  st.job_id = next_job_++;
  st.job_started_ms = NowMs();
  st.job_actor = actor;
  st.status = "training";
  workers_.emplace_back([this, project] {
    pthread_setname_np(pthread_self(), "ns-models");
    if (Status s = Run(project); !s.ok())
      spdlog::warn("models: churn training of project {} failed: {}", project, s.ToString());
  });
  return json{{"job_id", st.job_id}, {"status", "training"}, {"started", true}};
}

Status ModelsService::RefreshChurn(const std::string& project) {
  {
    MutexLock l(&mu_);
    ProjectState& st = states_[project];
    if (st.job_id) return Status::OK();  // a training started by hand is doing it now
    st.job_id = next_job_++;
    st.job_started_ms = NowMs();
    st.job_actor = "daily job";
    st.status = "training";
  }
  return Run(project);
}

json ModelsService::PersonChurn(const std::string& project, uint32_t person) {
  std::shared_ptr<const Scored> sc;
  json summary;
  {
    MutexLock l(&mu_);
    auto it = states_.find(project);
    if (it == states_.end() || !it->second.scored) return nullptr;
    sc = it->second.scored;
    summary = it->second.summary;
  }
  auto pos = std::lower_bound(sc->persons.begin(), sc->persons.end(), person);
  if (pos == sc->persons.end() || *pos != person) return nullptr;
  const size_t i = static_cast<size_t>(pos - sc->persons.begin());
  return {{"risk", Round(sc->risk[i], 4)},
          {"decile", sc->decile[i]},
          {"as_of", FormatDate(sc->as_of_day)},
          {"horizon_days", summary.value("horizon_days", 30)},
          {"top_features", TopFeaturesJson(sc->top[i])}};
}

StatusOr<json> ModelsService::AtRiskPersons(const std::string& project, size_t limit) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  std::shared_ptr<const Scored> sc;
  {
    MutexLock l(&mu_);
    sc = states_[project].scored;
  }
  json persons = json::array();
  if (!sc) return json{{"persons", persons}, {"as_of", nullptr}, {"scored", 0}};
  std::vector<size_t> order(sc->persons.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  const size_t k = std::min(limit, order.size());
  std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                    [&](size_t a, size_t b) {
                      return sc->risk[a] != sc->risk[b] ? sc->risk[a] > sc->risk[b] : sc->persons[a] < sc->persons[b];
                    });
  auto snap = p->store->Snapshot();
  for (size_t j = 0; j < k; j++) {
    const size_t i = order[j];
    const uint32_t person = sc->persons[i];
    if (!snap->persons->IsPerson(person)) continue;  // merged or erased since it was scored
    json row = {{"distinct_id", p->store->DisplayId(person)},
                {"risk", Round(sc->risk[i], 4)},
                {"decile", sc->decile[i]},
                {"top_features", TopFeaturesJson(sc->top[i])},
                {"clv", nullptr},
                {"p_alive", nullptr}};
    auto c = std::lower_bound(sc->clv_persons.begin(), sc->clv_persons.end(), person);
    if (c != sc->clv_persons.end() && *c == person) {
      const size_t ci = static_cast<size_t>(c - sc->clv_persons.begin());
      row["clv"] = std::isfinite(sc->clv[ci]) ? json(Round(sc->clv[ci], 2)) : json(nullptr);
      row["p_alive"] = std::isfinite(sc->p_alive[ci]) ? json(Round(sc->p_alive[ci], 4)) : json(nullptr);
    }
    persons.push_back(std::move(row));
  }
  return json{{"persons", persons}, {"as_of", FormatDate(sc->as_of_day)}, {"scored", sc->persons.size()}};
}

}  // namespace ns
