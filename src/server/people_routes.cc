// The people API (docs/people.md): persons (page, timeline, list, CSV), cohorts (CRUD,
// static members, export) and the project's people settings. Personal data is masked for
// every role but admin (people/masking.h).
#include "server/people_routes.h"

#include "auth/accounts.h"
#include "models/models_service.h"
#include "people/invite_tree.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

bool Unmasked(const Principal& who) { return who.role == Role::kAdmin; }

// The audit log (auth/accounts.h) records every change of cohorts and people settings:
// who, when, before and after. A failed audit write does not undo the change (as in ops).
void AuditChange(ServerContext& ctx, const Principal& who, const char* action, const char* entity, int64_t id,
                 const json& before, const json& after) {
  (void)Audit(ctx.registry.meta_db(), who, action, entity, id, before, after);
}

std::string PathId(const HttpRequest& req) { return UrlDecode(req.matches.at(1), false); }

StatusOr<size_t> SizeParam(const HttpRequest& req, const char* name, size_t def, size_t lo, size_t hi) {
  if (!req.HasParam(name)) return def;
  const std::string v = req.Param(name);
  char* end = nullptr;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || x < static_cast<long long>(lo) || x > static_cast<long long>(hi))
    return InvalidArgument(std::string(name) + ": expected a number from " + std::to_string(lo) + " to " +
                               std::to_string(hi) + ", got '" + v + "'",
                           name);
  return static_cast<size_t>(x);
}

StatusOr<PersonListRequest> ListRequest(const HttpRequest& req, bool csv) {
  PersonListRequest r;
  if (req.HasParam("cohort")) {
    NS_ASSIGN_OR_RETURN(size_t c, SizeParam(req, "cohort", 0, 1, SIZE_MAX >> 1));
    r.cohort = static_cast<int64_t>(c);
  }
  if (req.HasParam("filters")) {
    json j = json::parse(req.Param("filters"), nullptr, false);
    if (j.is_discarded() || !j.is_array())
      return InvalidArgument("filters: expected a JSON array of filters", "filters");
    for (auto& f : j)  // person properties: the "person." prefix is optional here
      if (f.is_object() && f.contains("property") && f["property"].is_string() &&
          f["property"].get<std::string>().rfind("person.", 0) != 0)
        f["property"] = "person." + f["property"].get<std::string>();
    NS_ASSIGN_OR_RETURN(r.filters, ParseFilters(j, "filters"));
  }
  // A cohort definition (as POST /api/v1/cohorts/preview takes it) and its shorthands:
  // lifecycle=STAGE, tier=DIMENSION:LEVEL, tag=KEY or tag=KEY:VALUE (base tags).
  if (req.HasParam("definition")) {
    json j = json::parse(req.Param("definition"), nullptr, false);
    if (j.is_discarded()) return InvalidArgument("definition: expected a cohort definition (JSON)", "definition");
    NS_ASSIGN_OR_RETURN(CohortCondition c, ParseCohortDefinition(j));
    r.conditions.push_back(std::move(c));
  }
  auto shorthand = [&](const char* name, json condition) -> Status {
    auto c = ParseCohortDefinition(json{{"op", "and"}, {"conditions", json::array({std::move(condition)})}});
    if (!c.ok()) return InvalidArgument(std::string(name) + ": " + c.status().message(), name);
    r.conditions.push_back(std::move(*c));
    return Status::OK();
  };
  if (req.HasParam("lifecycle"))
    NS_RETURN_IF_ERROR(shorthand("lifecycle", {{"type", "lifecycle"}, {"stage", req.Param("lifecycle")}}));
  if (req.HasParam("tier")) {
    const std::string v = req.Param("tier");
    const size_t colon = v.find(':');
    if (colon == std::string::npos)
      return InvalidArgument("tier: expected DIMENSION:LEVEL (e.g. value:high), got '" + v + "'", "tier");
    NS_RETURN_IF_ERROR(
        shorthand("tier", {{"type", "tier"}, {"dimension", v.substr(0, colon)}, {"level", v.substr(colon + 1)}}));
  }
  if (req.HasParam("tag")) {
    const std::string v = req.Param("tag");
    const size_t colon = v.find(':');
    json c{{"type", "tag"}, {"tag", v.substr(0, colon)}};
    if (colon != std::string::npos) c["value"] = v.substr(colon + 1);
    NS_RETURN_IF_ERROR(shorthand("tag", c));
  }
  r.q = req.Param("q");
  if (req.HasParam("order_by")) {
    r.order_by = req.Param("order_by");
    if (r.order_by != "last_seen" && r.order_by != "first_seen" && r.order_by != "event_count")
      return InvalidArgument("order_by: expected last_seen, first_seen or event_count", "order_by");
  }
  if (!csv) {
    NS_ASSIGN_OR_RETURN(r.limit, SizeParam(req, "limit", 50, 1, 1000));
    NS_ASSIGN_OR_RETURN(r.offset, SizeParam(req, "cursor", 0, 0, SIZE_MAX >> 1));
  } else {
    r.limit = SIZE_MAX;
  }
  return r;
}

// Streamed (chunked): an export of a million persons is never one string in memory.
void SendCsv(HttpResponse& res, StatusOr<PeopleService::CsvProducer> csv, const std::string& filename) {
  if (!csv.ok()) return res.Error(csv.status());
  res.SetHeader("Content-Disposition", "attachment; filename=\"" + filename + "\"");
  res.Stream(200, "text/csv; charset=utf-8", std::move(csv).value());
}

class PeopleCohortDirectory final : public CohortDirectory {
 public:
  explicit PeopleCohortDirectory(PeopleService& people) : people_(people) {}
  StatusOr<CohortSummary> Find(const std::string& project, int64_t id, bool with_size) override {
    NS_ASSIGN_OR_RETURN(PeopleService::CohortHeadline h, people_.Headline(project, id, with_size));
    return CohortSummary{id, std::move(h.name), h.size, h.as_of_ms};
  }

 private:
  PeopleService& people_;
};

}  // namespace

std::unique_ptr<CohortDirectory> ConnectCohortsToScenarios(PeopleService& people, OpsService& ops) {
  auto directory = std::make_unique<PeopleCohortDirectory>(people);
  ops.scenarios.SetCohorts(directory.get());
  people.AddReferrers(
      [&ops](const std::string& project, int64_t id) { return ops.scenarios.UsingCohort(project, id); });
  return directory;
}

std::vector<Route> PeopleRoutes(ServerContext& ctx, PeopleService& people) {
  PeopleService* ps = &people;
  ServerContext* cx = &ctx;
  return {
      // ---- persons
      R("GET", R"(/api/v1/persons)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto r = ListRequest(req, false);
          if (!r.ok()) return res.Error(r.status());
          Reply(res, ps->ListPersons(who.project, *r, Unmasked(who)));
        }),
      R("GET", R"(/api/v1/persons\.csv)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto r = ListRequest(req, true);
          if (!r.ok()) return res.Error(r.status());
          SendCsv(res, ps->PersonsCsv(who.project, *r, Unmasked(who)), "persons.csv");
        }),
      R("GET", R"(/api/v1/persons/([^/]+)/events)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto limit = SizeParam(req, "limit", 50, 1, 1000);
          if (!limit.ok()) return res.Error(limit.status());
          Reply(res, ps->Timeline(who.project, PathId(req), req.Param("before"), *limit, Unmasked(who)));
        }),
      R("GET", R"(/api/v1/persons/([^/]+)/invite-tree)", Access::kViewer,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          InviteTreeOptions o;
          auto depth = SizeParam(req, "depth", 5, 1, 20);
          if (!depth.ok()) return res.Error(depth.status());
          auto limit = SizeParam(req, "limit", 500, 1, 5000);
          if (!limit.ok()) return res.Error(limit.status());
          o.depth = static_cast<int>(*depth);
          o.limit = *limit;
          if (req.HasParam("as_of")) {
            auto d = ParseDate(req.Param("as_of"), "as_of");
            if (!d.ok()) return res.Error(d.status());
            o.as_of_day = *d;
          }
          auto p = cx->registry.OpenProject(who.project);
          if (!p.ok()) return res.Error(p.status());
          auto s = ps->Settings(who.project);
          if (!s.ok()) return res.Error(s.status());
          Reply(res, InviteTree(**p, *s, PathId(req), o, Unmasked(who)));
        }),
      R("GET", R"(/api/v1/persons/([^/]+))", Access::kViewer,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          std::optional<int32_t> as_of;
          if (req.HasParam("as_of")) {
            auto d = ParseDate(req.Param("as_of"), "as_of");
            if (!d.ok()) return res.Error(d.status());
            as_of = *d;
          }
          auto person = ps->Person(who.project, PathId(req), as_of, Unmasked(who));
          // The churn model's score and its top features (docs/models.md), null if none.
          if (person.ok() && cx->models) {
            auto p = cx->ProjectOf(req);
            const int64_t did = p.ok() ? (*p)->store->FindDistinctId(PathId(req)) : -1;
            (*person)["churn"] =
                did < 0 ? json(nullptr)
                        : cx->models->PersonChurn(
                              who.project, (*p)->store->Snapshot()->persons->PersonOf(static_cast<uint32_t>(did)));
          }
          Reply(res, person);
        }),
      // Erasure (admin). The audit row is written here, not in people/ (which must not
      // depend on the accounts/ops layers): who and when, the tombstone id and counts,
      // never a distinct id or a property.
      R("DELETE", R"(/api/v1/persons/([^/]+))", Access::kAdmin,
        [ps, &ctx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto r = ps->ErasePerson(who.project, PathId(req));
          if (r.ok()) {
            json audit = *r;
            audit.erase("at");
            if (Status st = Audit(ctx.registry.meta_db(), who, "erase", "person", 0, nullptr, audit); !st.ok())
              spdlog::error("audit of erasure {} failed: {}", (*r)["tombstone"].get<std::string>(), st.ToString());
          }
          Reply(res, r);
        }),
      // ---- cohorts
      R("GET", R"(/api/v1/cohorts)", Access::kViewer,
        [ps](const HttpRequest&, HttpResponse& res, const Principal& who) {
          Reply(res, ps->ListCohorts(who.project));
        }),
      R("POST", R"(/api/v1/cohorts)", Access::kOperator,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) {
            auto r = ps->CreateCohort(who.project, b, who.actor);
            if (r.ok()) AuditChange(*cx, who, "create", "cohort", (*r)["id"].get<int64_t>(), nullptr, b);
            Reply(res, r, 201);
          });
        }),
      // Evaluates without saving (a read: any role), for the console's live size.
      R("POST", R"(/api/v1/cohorts/preview)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, ps->PreviewCohorts(who.project, b)); });
        }),
      R("GET", R"(/api/v1/cohorts/(\d+))", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res, ps->GetCohort(who.project, Id(req)));
        }),
      R("PATCH", R"(/api/v1/cohorts/(\d+))", Access::kOperator,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) {
            auto before = ps->GetCohort(who.project, Id(req));
            auto r = ps->UpdateCohort(who.project, Id(req), b);
            if (r.ok()) AuditChange(*cx, who, "update", "cohort", Id(req), before.ok() ? *before : json(), b);
            Reply(res, r);
          });
        }),
      R("DELETE", R"(/api/v1/cohorts/(\d+))", Access::kOperator,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto before = ps->GetCohort(who.project, Id(req));
          Status st = ps->DeleteCohort(who.project, Id(req));
          if (st.ok()) AuditChange(*cx, who, "delete", "cohort", Id(req), before.ok() ? *before : json(), nullptr);
          ReplyOk(res, st);
        }),
      R("POST", R"(/api/v1/cohorts/(\d+)/members)", Access::kOperator,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          const std::string mime = req.MimeType();
          const bool csv = mime == "text/csv" || mime == "application/csv";
          if (!csv && !mime.empty() && mime != "application/json" && mime != "text/plain")
            return res.Error(
                UnsupportedMediaType("expected Content-Type text/csv or application/json, got '" + mime + "'"));
          auto r = ps->AddMembers(who.project, Id(req), std::string(req.body), csv);
          // The counts only: the ids themselves are personal data.
          if (r.ok())
            AuditChange(*cx, who, "add_members", "cohort", Id(req), nullptr,
                        json{{"added", (*r)["added"]}, {"unknown", (*r)["unknown"].size()}});
          Reply(res, r);
        }),
      R("GET", R"(/api/v1/cohorts/(\d+)/export\.csv)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          // An unknown cohort in the path is a 404 (as a ?cohort= parameter it is a 400).
          if (auto c = ps->Headline(who.project, Id(req), false); !c.ok()) return res.Error(c.status());
          PersonListRequest r;
          r.cohort = Id(req);
          r.limit = SIZE_MAX;
          SendCsv(res, ps->PersonsCsv(who.project, r, Unmasked(who)), "cohort-" + std::to_string(Id(req)) + ".csv");
        }),
      // ---- tags
      R("GET", R"(/api/v1/tags)", Access::kViewer,
        [ps](const HttpRequest&, HttpResponse& res, const Principal& who) { Reply(res, ps->Tags(who.project)); }),
      R("GET", R"(/api/v1/tags/([^/]+)/values)", Access::kViewer,
        [ps](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto limit = SizeParam(req, "limit", 100, 1, 1000);
          if (!limit.ok()) return res.Error(limit.status());
          Reply(res, ps->TagValues(who.project, PathId(req), *limit, Unmasked(who)));
        }),
      // ---- settings
      R("GET", R"(/api/v1/people/settings)", Access::kViewer,
        [ps](const HttpRequest&, HttpResponse& res, const Principal& who) {
          auto s = ps->Settings(who.project);
          if (!s.ok()) return res.Error(s.status());
          res.Json(200, s->ToJson());
        }),
      R("PATCH", R"(/api/v1/people/settings)", Access::kAdmin,
        [ps, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) {
            auto before = ps->Settings(who.project);
            auto s = ps->UpdateSettings(who.project, b);
            if (!s.ok()) return res.Error(s.status());
            AuditChange(*cx, who, "update", "people_settings", 0, before.ok() ? before->ToJson() : json(), s->ToJson());
            res.Json(200, s->ToJson());
          });
        }),
  };
}

}  // namespace ns
