// The host side of a data-parallel job (kernels/data_parallel_sync.h): no rank joins the
// communicator before every rank finished its setup; a failed or stopped rank releases the others;
// and the deadline for the communicator to form counts from the joining, never from the job's start.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "kernels/data_parallel_sync.h"

namespace tessera::kernels {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST_CASE("no rank passes the barrier before every rank set up", "[data-parallel]") {
  constexpr int kRanks = 4;
  RankBarrier barrier(kRanks);
  std::atomic<bool> stop{false};
  std::atomic<int> set_up{0};
  std::atomic<int> early{0};  // ranks that passed while another was still setting up
  std::atomic<int> passed{0};
  std::vector<std::thread> ranks;
  for (int r = 0; r < kRanks; ++r) {
    ranks.emplace_back([&, r] {
      std::this_thread::sleep_for(milliseconds(10 * r));  // the last rank is the slowest
      ++set_up;
      if (barrier.ArriveAndWait(true, stop)) {
        if (set_up.load() < kRanks) ++early;
        ++passed;
      }
    });
  }
  for (std::thread& t : ranks) t.join();
  CHECK(passed == kRanks);
  CHECK(early == 0);
}

TEST_CASE("a rank that failed its setup, or a stop, releases the waiting ranks", "[data-parallel]") {
  std::atomic<bool> stop{false};
  SECTION("a failed rank") {
    RankBarrier barrier(3);
    std::atomic<int> refused{0};
    std::vector<std::thread> ranks;
    for (int r = 0; r < 2; ++r) ranks.emplace_back([&] { refused += barrier.ArriveAndWait(true, stop) ? 0 : 1; });
    std::this_thread::sleep_for(milliseconds(20));
    CHECK_FALSE(barrier.ArriveAndWait(false, stop));
    for (std::thread& t : ranks) t.join();
    CHECK(refused == 2);
  }
  SECTION("a stop while a rank never arrives") {
    RankBarrier barrier(2);
    std::thread stopper([&] {
      std::this_thread::sleep_for(milliseconds(50));
      stop = true;
    });
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(barrier.ArriveAndWait(true, stop, milliseconds(5)));
    stopper.join();
    CHECK(std::chrono::steady_clock::now() - start < seconds(2));
  }
}

TEST_CASE("the communicator's deadline counts from the joining, not from the job's start", "[data-parallel]") {
  CommunicatorDeadline deadline(seconds(120));
  const auto job_start = std::chrono::steady_clock::time_point{} + seconds(1'000);
  // A setup of ten minutes (a big dataset) is no reason to give up: the ranks have not joined yet.
  CHECK_FALSE(deadline.started());
  CHECK_FALSE(deadline.Overdue(job_start + seconds(600)));
  const auto joining = job_start + seconds(600);
  deadline.Start(joining);
  deadline.Start(joining + seconds(50));  // a later rank's Start changes nothing: the first counts
  CHECK(deadline.started());
  CHECK_FALSE(deadline.Overdue(joining + seconds(119)));
  CHECK_FALSE(deadline.Overdue(joining + seconds(120)));
  CHECK(deadline.Overdue(joining + seconds(121)));
}

}  // namespace
}  // namespace tessera::kernels
