// Reads a job spec file for `tessera job submit -f`: JSON, or YAML with the same field names as
// tessera.v1.JobSpec (YAML is translated to JSON and parsed by protobuf's JSON parser, so both
// formats accept exactly the same fields).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::cli {

absl::StatusOr<v1::JobSpec> ParseJobSpec(const std::string& text);
absl::StatusOr<v1::JobSpec> LoadJobSpecFile(const std::string& path);

}  // namespace tessera::cli
