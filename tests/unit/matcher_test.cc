#include <catch2/catch.hpp>

#include "scheduler/matcher.h"

using namespace tessera::scheduler;

namespace {

WorkerOffer Worker(int64_t id, int64_t ask, int gpus, const std::string& model = "H100") {
  WorkerOffer w{.worker_id = id, .ask_utok_per_gpu_hour = ask, .free_gpus = {}};
  for (int i = 0; i < gpus; ++i) w.free_gpus.push_back({.index = static_cast<uint32_t>(i), .model = model});
  return w;
}

PendingJob Job(int64_t id, uint32_t gpus, int64_t bid, int64_t at = 0) {
  return {.job_id = id, .gpu_count = gpus, .gpu_models = {}, .bid_utok_per_gpu_hour = bid, .priority = Priority::kOnDemand,
          .submitted_at_ms = at};
}

}  // namespace

TEST_CASE("a job goes to the cheapest feasible worker and pays its ask", "[matcher]") {
  MatchResult r = Match({.jobs = {Job(1, 1, 100)}, .workers = {Worker(10, 90, 1), Worker(11, 50, 1), Worker(12, 200, 1)}});
  REQUIRE(r.placements.size() == 1);
  CHECK(r.placements[0].worker_id == 11);
  CHECK(r.placements[0].price_utok_per_gpu_hour == 50);
}

TEST_CASE("a bid below every ask waits, and says why", "[matcher]") {
  MatchResult r = Match({.jobs = {Job(1, 1, 10)}, .workers = {Worker(10, 20, 2), Worker(11, 30, 1)}});
  CHECK(r.placements.empty());
  REQUIRE(r.waiting.size() == 1);
  CHECK(r.waiting[0].reason == "bid 10 below the lowest ask 20 of 3 matching GPUs");
}

TEST_CASE("gang scheduling: all GPUs on one worker or none", "[matcher]") {
  MatchResult r = Match({.jobs = {Job(1, 4, 100)}, .workers = {Worker(10, 10, 2), Worker(11, 10, 3)}});
  CHECK(r.placements.empty());
  REQUIRE(r.waiting.size() == 1);
  CHECK(r.waiting[0].reason == "needs 4 free GPUs on one worker; the largest free fit is 3");
  r = Match({.jobs = {Job(1, 3, 100)}, .workers = {Worker(10, 10, 2), Worker(11, 10, 3)}});
  REQUIRE(r.placements.size() == 1);
  CHECK(r.placements[0].gpu_indexes.size() == 3);
}

TEST_CASE("higher bids are served first, then earlier submits", "[matcher]") {
  MatchResult r = Match({.jobs = {Job(1, 1, 100, 1), Job(2, 1, 300, 5), Job(3, 1, 300, 2)}, .workers = {Worker(10, 10, 2)}});
  REQUIRE(r.placements.size() == 2);
  CHECK(r.placements[0].job_id == 3);
  CHECK(r.placements[1].job_id == 2);
  REQUIRE(r.waiting.size() == 1);
  CHECK(r.waiting[0].job_id == 1);
}

TEST_CASE("model filters and no GPU is handed out twice", "[matcher]") {
  PendingJob a100 = Job(1, 1, 100);
  a100.gpu_models = {"A100"};
  MatchResult r = Match({.jobs = {a100, Job(2, 2, 100), Job(3, 1, 100)}, .workers = {Worker(10, 10, 2, "H100")}});
  REQUIRE(r.placements.size() == 1);
  CHECK(r.placements[0].job_id == 2);
  REQUIRE(r.waiting.size() == 2);
  CHECK(r.waiting[0].reason == "no free GPU of an accepted model");
}

TEST_CASE("ties in price go to the fuller worker (packing)", "[matcher]") {
  MatchResult r = Match({.jobs = {Job(1, 1, 100)}, .workers = {Worker(10, 10, 8), Worker(11, 10, 2)}});
  REQUIRE(r.placements.size() == 1);
  CHECK(r.placements[0].worker_id == 11);
}
