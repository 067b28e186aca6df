#include "services/worker/outbox_journal.h"

#include <fcntl.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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

// The journal's records in order, applied: messages with the acks that settled them. `good_bytes`
// is where the last intact record ends.
struct Scan {
  std::vector<OutboxJournal::Entry> entries;
  size_t good_bytes = 0;
};

absl::StatusOr<Scan> ScanFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string()));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();
  Scan scan;
  std::vector<size_t> open;  // entries not yet acknowledged
  size_t at = 0;
  while (data.size() - at >= kHeaderBytes) {
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(data[at + i])) << (8 * i);
    if (n == 0 || n > kMaxRecordBytes || data.size() - at - kHeaderBytes < n) break;
    const std::string_view payload(data.data() + at + kHeaderBytes, n);
    if (Digest(payload) != std::string_view(data.data() + at + 4, kDigestBytes)) break;
    const std::string body(payload.substr(1));
    if (payload[0] == 'M') {
      OutboxJournal::Entry entry;
      if (!entry.message.ParseFromString(body)) break;
      open.push_back(scan.entries.size());
      scan.entries.push_back(std::move(entry));
    } else if (payload[0] == 'A') {
      v1::ServerMessage ack;
      if (!ack.ParseFromString(body)) break;
      std::erase_if(open, [&](size_t i) {
        OutboxJournal::Entry& e = scan.entries[i];
        if (!IsAcked(e.message, ack)) return false;
        e.acked = true;
        e.accepted = !ack.has_usage_ack() || ack.usage_ack().accepted();
        return true;
      });
    } else {
      break;
    }
    at += kHeaderBytes + n;
    scan.good_bytes = at;
  }
  return scan;
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
  if (scan->good_bytes < size) {
    // A crash mid-append left a partial record: what it held was never sent, so it is dropped.
    if (::ftruncate(journal->fd_, static_cast<off_t>(scan->good_bytes)) != 0 || ::fsync(journal->fd_) != 0) {
      return Errno("cannot truncate", path);
    }
  }
  journal->size_ = static_cast<int64_t>(scan->good_bytes);
  for (Entry& e : scan->entries) {
    if (!e.acked) journal->pending_.push_back(std::move(e.message));
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
