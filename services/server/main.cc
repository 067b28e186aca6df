// The `tessera` binary: the server and the command-line client in one.
#include <sodium.h>

#include <CLI/CLI.hpp>
#include <cstdlib>

#include "services/cli/commands.h"
#include "services/server/server_commands.h"

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  tessera::cli::CliContext ctx;
  if (const char* server = std::getenv("TESSERA_SERVER")) ctx.server = server;
  CLI::App app{"Tessera: a decentralized GPU compute marketplace"};
  app.require_subcommand(1);
  app.add_option("--server", ctx.server, "Server address (env TESSERA_SERVER)");
  app.add_option("--output,-o", ctx.output, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->each([](const std::string& format) { tessera::cli::PrintTablesAsCsv(format == "csv"); });
  app.add_option("--timeout-ms", ctx.timeout_ms, "Deadline of each call");
  tessera::server::AddServerCommands(app, ctx);
  tessera::cli::AddAccountCommands(app, ctx);
  tessera::cli::AddJobCommands(app, ctx);
  tessera::cli::AddWorkerCommands(app, ctx);
  tessera::cli::AddBillingCommands(app, ctx);
  CLI11_PARSE(app, argc, argv);
  return ctx.exit_code;
}
