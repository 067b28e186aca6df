// Reads a job spec file for `tessera job submit -f`: JSON, or YAML with the same field names as
// tessera.v1.JobSpec (YAML is translated to JSON and parsed by protobuf's JSON parser, so both
// formats accept exactly the same fields). A field given twice (in either spelling, gpu_count or
// gpuCount) is refused rather than silently overwritten, and so is a file beyond the limits below:
// a YAML alias bomb fails in microseconds instead of expanding.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

inline constexpr size_t kMaxSpecBytes = 1 << 20;     // the file, and the JSON it expands to
inline constexpr size_t kMaxSpecValues = 100'000;    // values after YAML aliases are expanded
inline constexpr size_t kMaxSpecDepth = 64;          // nesting of maps and lists

absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text);
absl::StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path);

}  // namespace tessera::cli
