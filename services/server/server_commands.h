// `tessera server` and `tessera migrate`.
#pragma once

#include <CLI/CLI.hpp>

#include "services/cli/cli_context.h"

namespace tessera::server {

void AddServerCommands(CLI::App& app, cli::CliContext& ctx);

}  // namespace tessera::server
