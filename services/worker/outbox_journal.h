// The agent's outbox on disk: every usage report and result is appended (and fdatasync'ed) before
// it is sent, and every acknowledgement after it arrives, so a worker that restarts, or loses the
// scheduler for minutes, still delivers each report exactly as signed, in order. A record is
// [u32 length][16-byte BLAKE2b of the payload][payload: 'M' + WorkerMessage | 'A' + ServerMessage];
// a torn or corrupt tail (a crash mid-append) is cut off when the journal is opened. Damage in the
// middle (bytes overwritten on disk) loses only the records it touches: the intact records after it
// are found again by their digests and kept, the damage is logged as an error and counted
// (recovery()), a copy is kept as `<path>.damaged`, and the journal is rewritten clean. Once it has
// grown past `compact_bytes` the journal is rewritten with only what is still unacknowledged.
//
//   auto journal = OutboxJournal::Open(state_dir / "outbox.journal");
//   std::deque<v1::WorkerMessage> outbox = (*journal)->Pending();   // resend these after hello
//   (*journal)->Append(message);  … send …  (*journal)->Acknowledge(ack);
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// Whether `ack` acknowledges `message` (a usage ack covers its lease's seqs up to through_seq).
bool IsAcked(const v1::WorkerMessage& message, const v1::ServerMessage& ack);

class OutboxJournal {
 public:
  static constexpr int64_t kDefaultCompactBytes = 4 << 20;

  static absl::StatusOr<std::unique_ptr<OutboxJournal>> Open(const std::filesystem::path& path,
                                                             int64_t compact_bytes = kDefaultCompactBytes);
  ~OutboxJournal();
  OutboxJournal(const OutboxJournal&) = delete;
  OutboxJournal& operator=(const OutboxJournal&) = delete;

  // What was appended and not acknowledged, in append order.
  std::deque<v1::WorkerMessage> Pending() const { return pending_; }
  absl::Status Append(const v1::WorkerMessage& message);
  absl::Status Acknowledge(const v1::ServerMessage& ack);

  // What opening the journal found beyond its intact records.
  struct Recovery {
    int64_t records_kept = 0;     // intact records read (messages and acks)
    int64_t damaged_regions = 0;  // stretches of damage skipped between intact records
    int64_t damaged_bytes = 0;
    int64_t torn_tail_bytes = 0;  // cut from the end: a crash mid-append, or damage at the very end
  };
  const Recovery& recovery() const { return recovery_; }

  // Everything a journal file records, for tests and audits: each message with the ack that
  // settled it (none while pending). Compaction forgets acknowledged messages.
  struct Entry {
    v1::WorkerMessage message;
    bool acked = false;
    bool accepted = false;  // the ack's verdict (results are always accepted once acked)
  };
  static absl::StatusOr<std::vector<Entry>> Read(const std::filesystem::path& path);

 private:
  OutboxJournal(std::filesystem::path path, int64_t compact_bytes) : path_(std::move(path)), compact_bytes_(compact_bytes) {}
  absl::Status Write(char kind, const std::string& bytes);
  absl::Status Compact();

  const std::filesystem::path path_;
  const int64_t compact_bytes_;
  int fd_ = -1;
  int64_t size_ = 0;
  std::deque<v1::WorkerMessage> pending_;
  Recovery recovery_;
};

}  // namespace tessera::worker
