// The workloads a job spec names (JobSpec.workload) and the results they report (JobResult.outputs),
// read the same way by intake, the scheduler and the worker:
//
//   WorkloadKind(spec)          "train_mlp" for a spec whose workload is train_mlp; "" when unset
//   RedactSecrets(&spec)        a container spec's secret values gone, for everything the API returns
//   UpgradeLegacyResult("train_mlp", &r)   moves the flat result fields of older agents and stored
//                                          jobs into `outputs`, so that everything after it reads one shape
#pragma once

#include <array>
#include <string_view>

#include "tessera/v1/jobs.pb.h"

namespace tessera {

// Every workload a spec may name, in the order of the proto's oneof.
inline constexpr std::array<std::string_view, 5> kWorkloadKinds = {"sleep", "train_mlp", "gemm_bench", "allreduce_bench", "container"};

// The name of the spec's workload (its member of the oneof); empty when none is set.
std::string_view WorkloadKind(const v1::JobSpec& spec);

// The job kind a worker says it runs to be given a container job that names an OCI image (one
// with podman), beside "container" (its process sandbox).
inline constexpr std::string_view kOciImageKind = "container_oci";
// What a worker must run for the job to be matched to it: its workload kind, or kOciImageKind.
std::string_view MatchingKind(const v1::JobSpec& spec);
// "localhost/trainer:1", "registry.example/team/img@sha256:…": at most 256 characters of
// [A-Za-z0-9._/:@-], starting with a letter or digit (so never an option to podman), with a
// registry or namespace and a tag or digest (never a short name or a bare id).
bool IsImageReference(std::string_view image);
bool IsWorkloadKind(std::string_view kind);

// What a spec shows anyone but the worker that runs it: each secret's value replaced by
// "<redacted>" (the names stay, so a customer sees which it gave).
void RedactSecrets(v1::JobSpec* spec);
inline constexpr std::string_view kRedacted = "<redacted>";

// A result written in the layout before `outputs` (flat fields 1..10 beside `error`) rewritten into
// the member of `outputs` of the job's workload `kind` (WorkloadKind of its spec), the flat fields
// cleared; a failed run's are dropped. A result already in the new layout is left as it is.
void UpgradeLegacyResult(std::string_view kind, v1::JobResult* result);

}  // namespace tessera
