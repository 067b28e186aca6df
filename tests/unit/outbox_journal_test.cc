#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "services/worker/outbox_journal.h"

using tessera::worker::OutboxJournal;
namespace v1 = tessera::v1;

namespace {

struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char tmpl[] = "/tmp/tessera-journal-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

v1::WorkerMessage Usage(int64_t job, uint64_t seq, int64_t gpu_ms) {
  v1::WorkerMessage m;
  m.mutable_usage()->set_job_id(job);
  m.mutable_usage()->set_attempt(1);
  m.mutable_usage()->set_seq(seq);
  m.mutable_usage()->set_gpu_ms(gpu_ms);
  m.mutable_usage()->set_signature(std::string(64, static_cast<char>(seq)));
  return m;
}

v1::ServerMessage UsageAck(int64_t job, uint64_t through, bool accepted) {
  v1::ServerMessage ack;
  ack.mutable_usage_ack()->set_job_id(job);
  ack.mutable_usage_ack()->set_attempt(1);
  ack.mutable_usage_ack()->set_through_seq(through);
  ack.mutable_usage_ack()->set_accepted(accepted);
  return ack;
}

std::vector<uint64_t> Seqs(const std::deque<v1::WorkerMessage>& pending) {
  std::vector<uint64_t> out;
  for (const auto& m : pending) out.push_back(m.usage().seq());
  return out;
}

}  // namespace

TEST_CASE("the outbox journal keeps what was not acknowledged across a restart, in order", "[worker][journal]") {
  TempDir dir;
  const auto path = dir.path / "outbox.journal";
  {
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    for (uint64_t seq = 1; seq <= 5; ++seq) REQUIRE((*journal)->Append(Usage(7, seq, 1000)).ok());
    REQUIRE((*journal)->Acknowledge(UsageAck(7, 2, true)).ok());
    REQUIRE((*journal)->Acknowledge(UsageAck(7, 3, false)).ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{4, 5});
  }
  auto reopened = OutboxJournal::Open(path);
  REQUIRE(reopened.ok());
  CHECK(Seqs((*reopened)->Pending()) == std::vector<uint64_t>{4, 5});
  CHECK((*reopened)->Pending()[0].usage().signature() == std::string(64, '\x04'));  // byte for byte as signed

  auto entries = OutboxJournal::Read(path);
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 5);
  CHECK(((*entries)[0].acked && (*entries)[0].accepted));
  CHECK(((*entries)[2].acked && !(*entries)[2].accepted));  // refused: acknowledged, never to be resent
  CHECK_FALSE((*entries)[3].acked);
}

TEST_CASE("a torn append is cut off; the records before it stand", "[worker][journal]") {
  TempDir dir;
  const auto path = dir.path / "outbox.journal";
  {
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    REQUIRE((*journal)->Append(Usage(1, 1, 10)).ok());
    REQUIRE((*journal)->Append(Usage(1, 2, 20)).ok());
  }
  const auto intact = std::filesystem::file_size(path);
  SECTION("a partial record") {
    std::filesystem::resize_file(path, intact - 7);
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{1});
    REQUIRE((*journal)->Append(Usage(1, 3, 30)).ok());  // appends after the cut, readable again
    auto again = OutboxJournal::Open(path);
    REQUIRE(again.ok());
    CHECK(Seqs((*again)->Pending()) == std::vector<uint64_t>{1, 3});
  }
  SECTION("garbage after the last record") {
    std::ofstream(path, std::ios::app | std::ios::binary) << std::string("\x10\x00\x00\x00garbage-garbage-garbage", 27);
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{1, 2});
    CHECK(std::filesystem::file_size(path) == intact);
    CHECK((*journal)->recovery().torn_tail_bytes == 27);
    CHECK((*journal)->recovery().damaged_regions == 0);
  }
  SECTION("a flipped bit in the last record") {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(intact - 3));
    f.put('\x7f');
    f.close();
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{1});
  }
}

TEST_CASE("damage in the middle loses only the records it touches: the rest are kept, counted and the journal rewritten clean",
          "[worker][journal]") {
  TempDir dir;
  const auto path = dir.path / "outbox.journal";
  std::vector<uintmax_t> ends;  // where each record ends
  {
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    for (uint64_t seq = 1; seq <= 6; ++seq) {
      REQUIRE((*journal)->Append(Usage(9, seq, 100 * seq)).ok());
      ends.push_back(std::filesystem::file_size(path));
    }
    REQUIRE((*journal)->Acknowledge(UsageAck(9, 1, true)).ok());
  }
  const auto overwrite = [&](uintmax_t at, const std::string& bytes) {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(at));
    f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  };
  SECTION("8 bytes inside the third record's payload") {
    overwrite(ends[1] + 30, "XXXXXXXX");
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{2, 4, 5, 6});
    CHECK((*journal)->recovery().damaged_regions == 1);
    CHECK((*journal)->recovery().damaged_bytes == static_cast<int64_t>(ends[2] - ends[1]));
    CHECK((*journal)->recovery().torn_tail_bytes == 0);
  }
  SECTION("8 bytes over the third record's length and digest") {
    overwrite(ends[1], std::string("\xff\xff\xff\x7f\x01\x02\x03\x04", 8));
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{2, 4, 5, 6});
    CHECK((*journal)->recovery().damaged_regions == 1);
  }
  SECTION("two damaged records apart") {
    overwrite(ends[0] + 25, "XXXXXXXX");
    overwrite(ends[3] + 25, "XXXXXXXX");
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK(Seqs((*journal)->Pending()) == std::vector<uint64_t>{3, 4, 6});
    CHECK((*journal)->recovery().damaged_regions == 2);
  }
  // The damaged file is kept for inspection; the journal itself reads clean from now on and takes
  // appends.
  CHECK(std::filesystem::exists(path.string() + ".damaged"));
  {
    auto journal = OutboxJournal::Open(path);
    REQUIRE(journal.ok());
    CHECK((*journal)->recovery().damaged_regions == 0);
    CHECK((*journal)->recovery().torn_tail_bytes == 0);
    REQUIRE((*journal)->Append(Usage(9, 7, 700)).ok());
  }
  auto entries = OutboxJournal::Read(path);
  REQUIRE(entries.ok());
  CHECK(entries->back().message.usage().seq() == 7);
}

TEST_CASE("compaction rewrites the journal with only the unacknowledged messages", "[worker][journal]") {
  TempDir dir;
  const auto path = dir.path / "outbox.journal";
  auto journal = OutboxJournal::Open(path, /*compact_bytes=*/4096);
  REQUIRE(journal.ok());
  for (uint64_t seq = 1; seq <= 200; ++seq) {
    REQUIRE((*journal)->Append(Usage(3, seq, 5)).ok());
    if (seq % 10 == 0) REQUIRE((*journal)->Acknowledge(UsageAck(3, seq - 1, true)).ok());
  }
  CHECK(std::filesystem::file_size(path) < 4096 + 2048);
  auto reopened = OutboxJournal::Open(path);
  REQUIRE(reopened.ok());
  CHECK(Seqs((*reopened)->Pending()) == Seqs((*journal)->Pending()));
  CHECK(Seqs((*reopened)->Pending()).front() == 200);
  CHECK_FALSE(std::filesystem::exists(dir.path / "outbox.journal.tmp"));
}

TEST_CASE("a result is acknowledged by its finished ack only", "[worker][journal]") {
  TempDir dir;
  auto journal = OutboxJournal::Open(dir.path / "outbox.journal");
  REQUIRE(journal.ok());
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(9);
  finished.mutable_finished()->set_attempt(2);
  REQUIRE((*journal)->Append(finished).ok());
  REQUIRE((*journal)->Acknowledge(UsageAck(9, 100, true)).ok());
  CHECK((*journal)->Pending().size() == 1);
  v1::ServerMessage ack;
  ack.mutable_finished_ack()->set_job_id(9);
  ack.mutable_finished_ack()->set_attempt(2);
  REQUIRE((*journal)->Acknowledge(ack).ok());
  CHECK((*journal)->Pending().empty());
}
