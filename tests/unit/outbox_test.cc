// Exactly-once sends and jobs across crashes (docs/notifications.md, "Delivery
// guarantees"): messages go through the outbox, keyed by (channel, dedup key); a job claims
// its run before it starts and an interrupted claim is taken over.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "core/httplib_checked.h"
#include "ops/http_client.h"
#include "ops/ops_service.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

class OutboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetAllowPrivateAddresses(true);  // the receiver is on loopback
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      received_++;
      last_body_ = req.body;
      res.set_content("ok", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    auto reg = ProjectRegistry::Open(dir_.path());
    ASSERT_TRUE(reg.ok());
    registry_ = std::move(*reg);
    ASSERT_TRUE(registry_->Create("p", "Asia/Shanghai").ok());
    OpenOps();
    auto id = ops_->channels.Create(
        who_, json{{"kind", "webhook"}, {"url", "http://127.0.0.1:" + std::to_string(port_) + "/hook"}});
    ASSERT_TRUE(id.ok()) << id.status().ToString();
  }
  void TearDown() override {
    ops_.reset();
    server_.stop();
    thread_.join();
    SetAllowPrivateAddresses(false);
  }
  void OpenOps(OpsOptions o = {}) {
    ops_.reset();
    auto ops = OpsService::Open(*registry_, o);
    ASSERT_TRUE(ops.ok()) << ops.status().ToString();
    ops_ = std::move(*ops);
  }
  Notification Message(const std::string& key) {
    Notification n;
    n.title = "t";
    n.text = "x";
    n.dedup_key = key;
    return n;
  }

  testing::TempDir dir_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<int> received_{0};
  std::string last_body_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<OpsService> ops_;
  Principal who_{"test", 0, "p", Role::kAdmin, Credential::kSystem};
};

TEST_F(OutboxTest, AKeyIsSentOncePerChannel) {
  json first = ops_->channels.SendAll("p", {}, Message("k1"));
  ASSERT_EQ(first.size(), 1u) << first.dump();
  EXPECT_TRUE(first[0]["ok"].get<bool>()) << first.dump();
  json again = ops_->channels.SendAll("p", {}, Message("k1"));
  ASSERT_EQ(again.size(), 1u) << again.dump();
  EXPECT_TRUE(again[0].value("duplicate", false)) << again.dump();
  EXPECT_EQ(received_.load(), 1);
  EXPECT_NE(last_body_.find("\"dedup_key\":\"k1\""), std::string::npos) << "receivers can de-duplicate too";
  ops_->channels.SendAll("p", {}, Message(""));
  ops_->channels.SendAll("p", {}, Message(""));
  EXPECT_EQ(received_.load(), 3) << "messages without a key are never duplicates";
}

// A process that committed a message and ended before sending it: the next start sends it,
// once.
TEST_F(OutboxTest, PendingMessagesAreSentByTheNextStart) {
  ASSERT_TRUE(ops_->channels.Enqueue("p", {}, Message("k2")).ok());
  EXPECT_EQ(received_.load(), 0);
  OpsOptions o;
  o.scheduler_tick_ms = 3'600'000;  // only the start-up pass
  OpenOps(o);
  ops_->StartScheduler();
  for (int i = 0; i < 200 && received_ == 0; i++) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  ops_->StopScheduler();
  EXPECT_EQ(received_.load(), 1);
  EXPECT_TRUE(ops_->channels.DeliverPending().empty());
  EXPECT_TRUE(ops_->channels.SendAll("p", {}, Message("k2"))[0].value("duplicate", false));
  EXPECT_EQ(received_.load(), 1);
}

// A job whose run was claimed by a process that crashed mid-job runs again; a finished one
// does not.
TEST_F(OutboxTest, InterruptedJobRunsAgainFinishedJobDoesNot) {
  OpsOptions o;
  o.scheduler_tick_ms = 20;
  o.snapshot_time = "00:00";
  OpenOps(o);
  Project* p = *registry_->OpenProject("p");
  std::string day = p->tz.FormatLocal(NowMs()).substr(0, 10);
  auto& db = registry_->meta_db();
  ASSERT_TRUE(
      db.Exec("INSERT INTO job_runs(project, job, run_key, at, state) VALUES('p', 'interrupted', ?, 0, 'running')",
              {day})
          .ok());
  ASSERT_TRUE(
      db.Exec("INSERT INTO job_runs(project, job, run_key, at, state) VALUES('p', 'finished', ?, 0, 'done')", {day})
          .ok());
  std::atomic<int> interrupted{0}, finished{0}, fresh{0};
  auto always = [](const ProjectSettings&, int) { return true; };
  ops_->AddJob({"interrupted", always, [&](const std::string&) {
                  interrupted++;
                  return Status::OK();
                }});
  ops_->AddJob({"finished", always, [&](const std::string&) {
                  finished++;
                  return Status::OK();
                }});
  ops_->AddJob({"fresh", always, [&](const std::string&) {
                  fresh++;
                  return Status::OK();
                }});
  ops_->StartScheduler();
  for (int i = 0; i < 300 && (interrupted == 0 || fresh == 0); i++)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // a few more ticks
  ops_->StopScheduler();
  EXPECT_EQ(interrupted.load(), 1);
  EXPECT_EQ(finished.load(), 0);
  EXPECT_EQ(fresh.load(), 1);
  auto rows = db.Query("SELECT job, state FROM job_runs WHERE project = 'p' ORDER BY job");
  ASSERT_TRUE(rows.ok());
  for (auto& r : *rows)
    if (r.Str(0) == "interrupted" || r.Str(0) == "fresh") {
      EXPECT_EQ(r.Str(1), "done") << r.Str(0);
    }
}

}  // namespace
}  // namespace ns
