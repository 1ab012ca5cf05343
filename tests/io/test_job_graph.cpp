// Tests for the farm's job graph (harness/sweep/job_graph.h), without MPI or processes: the order
// jobs go out in, dependencies, resume from earlier outcomes, unneeded dependencies, bundles, and
// the failures that follow a failed dependency.
#include <gtest/gtest.h>

#include "core/error.h"
#include "harness/sweep/job_graph.h"

namespace petl {
namespace {

FarmJob job(const std::string& key, double cost, const std::string& dep = "", const std::string& bundle = "") {
  FarmJob j;
  j.key = key;
  j.cost = cost;
  j.depends_on = dep;
  j.bundle = bundle;
  return j;
}
FarmJob cache(const std::string& key, double cost) {
  FarmJob j = job(key, cost);
  j.is_cache = true;
  return j;
}
std::vector<std::string> keys(const JobGraph& g, const std::vector<size_t>& unit) {
  std::vector<std::string> k;
  for (size_t i : unit) k.push_back(g.job(i).key);
  return k;
}

TEST(JobGraph, LongestFirstAndADependencyCarriesItsDependentsCost) {
  // c (cost 1) is needed by a (10) and b (20): priority 31, above d (25).
  JobGraph g({cache("c", 1), job("a", 10, "c"), job("b", 20, "c"), job("d", 25)}, {}, false);
  EXPECT_EQ(g.to_run(), 4);
  EXPECT_DOUBLE_EQ(g.priority(0), 31);
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"c"});
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"d"});
  EXPECT_FALSE(g.has_ready()) << "a and b wait for c";
  EXPECT_TRUE(g.finish(0, true, "").empty());
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"b"});
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"a"});
  EXPECT_EQ(g.unresolved(), 3);  // d, b and a run
  g.finish(1, true, "");
  g.finish(2, true, "");
  g.finish(3, true, "");
  EXPECT_EQ(g.unresolved(), 0);
  EXPECT_FALSE(g.any_failed());
}

TEST(JobGraph, AFailedDependencyFailsItsDependentsWithoutRunningThem) {
  JobGraph g({cache("c", 1), job("a", 10, "c"), job("b", 20, "c")}, {}, false);
  g.take_next();
  const auto failed = g.finish(0, false, "exit status 3: no images\nmore");
  ASSERT_EQ(failed.size(), 2u);
  for (const auto& u : failed) {
    EXPECT_EQ(u.why, "feature cache c failed: exit status 3: no images");
    g.fail_without_running(u.job);
  }
  EXPECT_EQ(g.unresolved(), 0);
  EXPECT_TRUE(g.any_failed());
}

TEST(JobGraph, EarlierOutcomesResumeAndUnneededDependenciesAreSkipped) {
  const std::map<std::string, EarlierOutcome> earlier = {
      {"a", {RecordStatus::kOk, ""}}, {"b", {RecordStatus::kDoesNotFit, ""}}, {"x", {RecordStatus::kFailed, "boom"}}};
  // c is needed only by a and b, both finished: c is not built.
  JobGraph g({cache("c", 1), job("a", 10, "c"), job("b", 20, "c"), job("x", 5)}, earlier, false);
  EXPECT_EQ(g.earlier_ok(), 2);
  EXPECT_EQ(g.earlier_failed(), 1);
  EXPECT_EQ(g.unneeded(), 1);
  EXPECT_EQ(g.to_run(), 0);
  EXPECT_FALSE(g.has_ready());
  EXPECT_EQ(g.state(0), JobGraph::State::kSkipped);
  EXPECT_TRUE(g.any_failed()) << "x failed earlier and is not retried";
  // retry_failed: x runs again.
  JobGraph r({cache("c", 1), job("a", 10, "c"), job("b", 20, "c"), job("x", 5)}, earlier, true);
  EXPECT_EQ(r.to_run(), 1);
  EXPECT_EQ(keys(r, r.take_next()), std::vector<std::string>{"x"});
}

TEST(JobGraph, DependenciesOutsideThePlanAndEarlierFailures) {
  // a's cache is in another shard and finished; b's is nowhere; d's cache failed earlier.
  const std::map<std::string, EarlierOutcome> earlier = {{"elsewhere", {RecordStatus::kOk, ""}},
                                                         {"c", {RecordStatus::kFailed, "exit status 3\nlog"}}};
  JobGraph g({cache("c", 1), job("a", 1, "elsewhere"), job("b", 1, "nowhere"), job("d", 1, "c")}, earlier, false);
  const auto u = g.take_unrunnable();
  ASSERT_EQ(u.size(), 2u);
  EXPECT_EQ(g.job(u[0].job).key, "b");
  EXPECT_EQ(u[0].why, "feature cache nowhere is not part of this plan and has no ok record");
  EXPECT_EQ(g.job(u[1].job).key, "d");
  EXPECT_EQ(u[1].why, "feature cache c failed: exit status 3");
  EXPECT_TRUE(g.take_unrunnable().empty()) << "given once";
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"a"});
}

TEST(JobGraph, ABundlesReadyJobsGoTogetherInPlanOrderAtTheBundlesCost) {
  JobGraph g({job("solo", 25), job("b1", 10, "", "B"), job("b2", 20, "", "B"), job("b3", 1, "", "B")}, {}, false);
  EXPECT_DOUBLE_EQ(g.priority(1), 31);  // the bundle's total
  EXPECT_EQ(keys(g, g.take_next()), (std::vector<std::string>{"b1", "b2", "b3"}));
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"solo"});
}

TEST(JobGraph, AKeyTwiceIsAnError) { EXPECT_THROW(JobGraph({job("a", 1), job("a", 2)}, {}, false), Error); }

// A val_select final job runs after every one of its searches (FarmJob::after) and its cache; a
// failed search fails it without running; searches finished earlier count as done.
TEST(JobGraph, AJobRunsAfterAllOfItsSearchesAndNotWhenOneFailed) {
  FarmJob fin = job("final", 5, "c");
  fin.after = {"s1", "s2"};
  JobGraph g({cache("c", 1), job("s1", 10), job("s2", 20), fin}, {}, false);
  EXPECT_DOUBLE_EQ(g.priority(1), 15) << "a search carries its final's cost";
  std::vector<std::string> order;
  while (g.has_ready()) {
    auto unit = g.take_next();
    for (auto k : keys(g, unit)) order.push_back(k);
    for (size_t i : unit)
      if (g.job(i).key != "s2") g.finish(i, true, "");
    if (g.state(3) == JobGraph::State::kReady) ADD_FAILURE() << "final ready before s2 finished";
  }
  EXPECT_EQ(order, (std::vector<std::string>{"s2", "s1", "c"}));
  EXPECT_TRUE(g.finish(2, true, "").empty());
  ASSERT_TRUE(g.has_ready());
  EXPECT_EQ(keys(g, g.take_next()), std::vector<std::string>{"final"});

  FarmJob fin2 = job("final", 5);
  fin2.after = {"s1", "s2"};
  JobGraph h({job("s1", 10), job("s2", 20), fin2}, {}, false);
  h.take_next();
  const auto failed = h.finish(1, false, "exit status 1: diverged");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed[0].why, "search job s2 failed: exit status 1: diverged");

  // Searches finished by an earlier run: the final is ready at once; one failed earlier: unrunnable.
  JobGraph k({job("s1", 10), job("s2", 20), fin2}, {{"s1", {RecordStatus::kOk, ""}}, {"s2", {RecordStatus::kOk, ""}}},
             false);
  EXPECT_EQ(keys(k, k.take_next()), std::vector<std::string>{"final"});
  JobGraph f({job("s1", 10), job("s2", 20), fin2},
             {{"s1", {RecordStatus::kOk, ""}}, {"s2", {RecordStatus::kFailed, "boom"}}}, false);
  const auto u = f.take_unrunnable();
  ASSERT_EQ(u.size(), 1u);
  EXPECT_EQ(u[0].why, "search job s2 failed: boom");
}

}  // namespace
}  // namespace petl
