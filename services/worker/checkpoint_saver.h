// A container job's /job/checkpoints on its way to the server (issue 18). The program commits a
// checkpoint by a rename: it writes to a name that marks the file unfinished (ending in .tmp,
// .part or .partial, or starting with a dot) and renames it into place when complete. A save takes
// only committed files, each copied into a snapshot the program cannot see from a descriptor opened
// under its parent directory's without following links (a program that swaps a directory for a
// link mid-save cannot lead the agent, which runs as root, anywhere else; a file replaced by a
// rename mid-save is read whole, as it was), packs them as a bundle and stores it as the job's
// CHECKPOINT artifact under the lease. A half-written file is never in a save, so it is never
// restored. Bounded: 64 levels, 100,000 entries, the byte limit.
//
//   CheckpointSaver saver(artifacts, lease, dir / "checkpoints", dir / "snapshot", "checkpoint of job 12 attempt 1", max_bytes);
//   absl::StatusOr<std::optional<v1::Artifact>> saved = saver.Save();   // nullopt: nothing new
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "services/worker/artifact_transfer.h"

namespace tessera::worker {

// Whether a checkpoint file's or directory's name marks it unfinished (never saved).
bool UnfinishedCheckpointName(const std::string& name);

class CheckpointSaver {
 public:
  CheckpointSaver(ArtifactTransfer& artifacts, v1::JobLease lease, std::filesystem::path dir, std::filesystem::path work,
                  std::string name, int64_t max_bytes)
      : artifacts_(artifacts), lease_(std::move(lease)), dir_(std::move(dir)), work_(std::move(work)), name_(std::move(name)),
        max_bytes_(max_bytes) {}

  // Saves what the program has committed if it changed since the last save (nullopt when it has
  // not, or nothing is committed).
  absl::StatusOr<std::optional<v1::Artifact>> Save();
  // Treats the directory as it is now as saved: what was restored into it is not stored again.
  void MarkSaved();

 private:
  // Committed files, directories and links, with what identifies each one's content.
  absl::StatusOr<std::string> Fingerprint() const;

  ArtifactTransfer& artifacts_;
  const v1::JobLease lease_;
  const std::filesystem::path dir_;
  const std::filesystem::path work_;
  const std::string name_;
  const int64_t max_bytes_;
  std::string saved_;  // the fingerprint of the last save
};

}  // namespace tessera::worker
