#include "services/worker/outbox_journal.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"

namespace tessera::worker {
namespace {

constexpr size_t kDigestBytes = 16;
constexpr size_t kHeaderBytes = 4 + kDigestBytes;
constexpr uint32_t kMaxRecordBytes = 16 << 20;

std::string Digest(std::string_view payload) {
  std::string out(kDigestBytes, '\0');
  crypto_generichash(reinterpret_cast<unsigned char*>(out.data()), out.size(), reinterpret_cast<const unsigned char*>(payload.data()),
                     payload.size(), nullptr, 0);
  return out;
}

std::string Record(char kind, const std::string& bytes) {
  const std::string payload = std::string(1, kind) + bytes;
  const uint32_t n = static_cast<uint32_t>(payload.size());
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + Digest(payload) + payload;
}

absl::Status Errno(const char* what, const std::filesystem::path& path) {
  return absl::InternalError(absl::StrCat(what, " ", path.string(), ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const std::string& bytes, const std::filesystem::path& path) {
  for (size_t done = 0; done < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Errno("cannot write", path);
    done += static_cast<size_t>(n);
  }
  if (::fdatasync(fd) != 0) return Errno("cannot sync", path);
  return absl::OkStatus();
}

// The journal's records in order, applied: messages with the acks that settled them. A damaged
// region (bytes overwritten on disk) is skipped up to the next intact record: the length prefix
// may itself be damaged, so the next record is found by its digest, which a stray match passes
// with probability 2^-128. What cannot be followed by an intact record is the torn tail.
struct Scan {
  std::vector<OutboxJournal::Entry> entries;
  size_t good_bytes = 0;                              // where the last intact record ends
  std::vector<std::pair<size_t, size_t>> damaged;     // [from, to) skipped between intact records
};

// The length of the intact record at `at` (header and payload), or 0.
size_t IntactRecord(std::string_view data, size_t at) {
  if (data.size() - at < kHeaderBytes) return 0;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[at + i])) << (8 * i);
  if (n == 0 || n > kMaxRecordBytes || data.size() - at - kHeaderBytes < n) return 0;
  const std::string_view payload = data.substr(at + kHeaderBytes, n);
  if (payload[0] != 'M' && payload[0] != 'A') return 0;
  if (Digest(payload) != data.substr(at + 4, kDigestBytes)) return 0;
  return kHeaderBytes + n;
}

// Applies one intact record; false if its protobuf does not parse (then it counts as damaged).
bool Apply(std::string_view payload, Scan& scan, std::vector<size_t>& open) {
  const std::string body(payload.substr(1));
  if (payload[0] == 'M') {
    OutboxJournal::Entry entry;
    if (!entry.message.ParseFromString(body)) return false;
    open.push_back(scan.entries.size());
    scan.entries.push_back(std::move(entry));
    return true;
  }
  v1::ServerMessage ack;
  if (!ack.ParseFromString(body)) return false;
  std::erase_if(open, [&](size_t i) {
    OutboxJournal::Entry& e = scan.entries[i];
    if (!IsAcked(e.message, ack)) return false;
    e.acked = true;
    e.accepted = !ack.has_usage_ack() || ack.usage_ack().accepted();
    return true;
  });
  return true;
}

absl::StatusOr<Scan> ScanFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();
  Scan scan;
  std::vector<size_t> open;  // entries not yet acknowledged
  size_t at = 0;
  while (at < data.size()) {
    size_t length = IntactRecord(data, at);
    if (length > 0 && Apply(std::string_view(data).substr(at + kHeaderBytes, length - kHeaderBytes), scan, open)) {
      at += length;
      scan.good_bytes = at;
      continue;
    }
    size_t next = at + 1;
    while (next < data.size() && IntactRecord(data, next) == 0) ++next;
    if (next >= data.size()) break;  // nothing intact follows: a torn tail
    scan.damaged.emplace_back(at, next);
    at = next;
  }
  return scan;
}

// Keeps the damaged journal beside the new one, for whoever investigates the disk.
void KeepDamagedCopy(const std::filesystem::path& path) {
  std::error_code ec;
  std::filesystem::copy_file(path, path.string() + ".damaged", std::filesystem::copy_options::overwrite_existing, ec);
  if (ec) spdlog::error("cannot keep a copy of the damaged outbox journal {}: {}", path.string(), ec.message());
}

}  // namespace

bool IsAcked(const v1::WorkerMessage& m, const v1::ServerMessage& ack) {
  if (ack.has_usage_ack() && m.has_usage()) {
    const auto& a = ack.usage_ack();
    return m.usage().job_id() == a.job_id() && m.usage().attempt() == a.attempt() && m.usage().seq() <= a.through_seq();
  }
  if (ack.has_finished_ack() && m.has_finished()) {
    return m.finished().job_id() == ack.finished_ack().job_id() && m.finished().attempt() == ack.finished_ack().attempt();
  }
  return false;
}

absl::StatusOr<std::unique_ptr<OutboxJournal>> OutboxJournal::Open(const std::filesystem::path& path, int64_t compact_bytes) {
  std::unique_ptr<OutboxJournal> journal(new OutboxJournal(path, compact_bytes));
  journal->fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (journal->fd_ < 0) return Errno("cannot open", path);
  absl::StatusOr<Scan> scan = ScanFile(path);
  if (!scan.ok()) return scan.status();
  const auto size = static_cast<size_t>(std::filesystem::file_size(path));
  Recovery& recovery = journal->recovery_;
  for (const auto& [from, to] : scan->damaged) {
    ++recovery.damaged_regions;
    recovery.damaged_bytes += static_cast<int64_t>(to - from);
    spdlog::error("outbox journal {}: bytes {}..{} are damaged and were skipped; the intact records after them are kept. "
                  "A usage report or result written there is lost (an acknowledgement lost there only causes a resend)",
                  path.string(), from, to);
  }
  recovery.torn_tail_bytes = static_cast<int64_t>(size - scan->good_bytes);
  recovery.records_kept = static_cast<int64_t>(scan->entries.size());
  if (recovery.torn_tail_bytes > 0) {
    // A crash mid-append leaves a partial record: what it held was never sent. Damage at the very
    // end looks the same, so it is said.
    spdlog::warn("outbox journal {}: cut {} bytes of a torn or damaged last record", path.string(), recovery.torn_tail_bytes);
  }
  journal->size_ = static_cast<int64_t>(scan->good_bytes);
  for (Entry& e : scan->entries) {
    if (!e.acked) journal->pending_.push_back(std::move(e.message));
  }
  if (recovery.damaged_regions > 0) {
    KeepDamagedCopy(path);
    // Rewritten clean, so appends never follow damage and the next start reads it straight.
    if (absl::Status s = journal->Compact(); !s.ok()) return s;
  } else if (recovery.torn_tail_bytes > 0) {
    if (::ftruncate(journal->fd_, static_cast<off_t>(scan->good_bytes)) != 0 || ::fsync(journal->fd_) != 0) {
      return Errno("cannot truncate", path);
    }
  }
  return journal;
}

OutboxJournal::~OutboxJournal() {
  if (fd_ >= 0) ::close(fd_);
}

absl::StatusOr<std::vector<OutboxJournal::Entry>> OutboxJournal::Read(const std::filesystem::path& path) {
  absl::StatusOr<Scan> scan = ScanFile(path);
  if (!scan.ok()) return scan.status();
  return std::move(scan->entries);
}

absl::Status OutboxJournal::Write(char kind, const std::string& bytes) {
  const std::string record = Record(kind, bytes);
  if (absl::Status s = WriteAll(fd_, record, path_); !s.ok()) return s;
  size_ += static_cast<int64_t>(record.size());
  return absl::OkStatus();
}

absl::Status OutboxJournal::Append(const v1::WorkerMessage& message) {
  pending_.push_back(message);
  return Write('M', message.SerializeAsString());
}

absl::Status OutboxJournal::Acknowledge(const v1::ServerMessage& ack) {
  const size_t before = pending_.size();
  std::erase_if(pending_, [&](const v1::WorkerMessage& m) { return IsAcked(m, ack); });
  if (pending_.size() == before) return absl::OkStatus();  // a repeated ack: nothing to record
  if (absl::Status s = Write('A', ack.SerializeAsString()); !s.ok()) return s;
  return size_ > compact_bytes_ ? Compact() : absl::OkStatus();
}

absl::Status OutboxJournal::Compact() {
  // Written beside the journal and renamed over it: a crash leaves the old journal or the new one.
  const std::filesystem::path tmp = path_.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("cannot create", tmp);
  std::string all;
  for (const v1::WorkerMessage& m : pending_) all += Record('M', m.SerializeAsString());
  if (absl::Status s = WriteAll(fd, all, tmp); !s.ok()) {
    ::close(fd);
    return s;
  }
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
    ::close(fd);
    return Errno("cannot rename over", path_);
  }
  const int dir = ::open(path_.parent_path().empty() ? "." : path_.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
  ::close(fd_);
  fd_ = fd;
  size_ = static_cast<int64_t>(all.size());
  return absl::OkStatus();
}

}  // namespace tessera::worker
