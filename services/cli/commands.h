// Registers the `tessera` client subcommands on a CLI11 app. Each sets ctx.exit_code.
#pragma once

#include <CLI/CLI.hpp>

#include "services/cli/cli_context.h"

namespace tessera::cli {

void AddAccountCommands(CLI::App& app, CliContext& ctx);
// `artifact put|get|ls|rm`.
void AddArtifactCommands(CLI::App& app, CliContext& ctx);
// Under `job`: outputs, a container job's /job/outputs downloaded and unpacked.
void AddJobOutputsCommand(CLI::App& job, CliContext& ctx);
void AddJobCommands(CLI::App& app, CliContext& ctx);
// Under `job`: watch, which follows a job through server restarts.
void AddWatchCommand(CLI::App& job, CliContext& ctx);
// Under `job`: logs, a job's output, followed with -f.
void AddJobLogsCommand(CLI::App& job, CliContext& ctx);
// `health [--service S]`: the grpc.health.v1 check, for probes.
void AddHealthCommand(CLI::App& app, CliContext& ctx);
// `admin create-key|list-keys|revoke-key`.
void AddAdminCommands(CLI::App& app, CliContext& ctx);
void AddWorkerCommands(CLI::App& app, CliContext& ctx);
void AddBillingCommands(CLI::App& app, CliContext& ctx);
// Under `billing`: proof, verify-proof, batches.
void AddProofCommands(CLI::App& billing, CliContext& ctx);
// Under `billing`: payout request|list|approve|reject.
void AddPayoutCommands(CLI::App& billing, CliContext& ctx);
// Under `billing`: usage, revenue.
void AddReportCommands(CLI::App& billing, CliContext& ctx);

}  // namespace tessera::cli
