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
  if (const char* key = std::getenv("TESSERA_API_KEY")) ctx.api_key = key;
  if (const char* file = std::getenv("TESSERA_API_KEY_FILE")) ctx.api_key_file = file;
  if (const char* ca = std::getenv("TESSERA_TLS_CA")) ctx.tls_ca = ca;
  CLI::App app{"Tessera: a decentralized GPU compute marketplace"};
  app.require_subcommand(1);
  // Global flags work after the subcommand too (`tessera billing proof 1 3 -o json`): subcommands
  // made from here on pass options they do not know up to this app.
  app.fallthrough();
  app.add_option("--server", ctx.server, "Server address (env TESSERA_SERVER)");
  app.add_option("--output,-o", ctx.output, "table, csv or json")
      ->check(CLI::IsMember({"table", "csv", "json"}))
      ->each([](const std::string& format) { tessera::cli::PrintTablesAsCsv(format == "csv"); });
  app.add_option("--timeout-ms", ctx.timeout_ms, "Deadline of each call");
  app.add_option("--api-key", ctx.api_key, "API key sent with every call (env TESSERA_API_KEY)");
  app.add_option("--api-key-file", ctx.api_key_file, "File holding the API key (env TESSERA_API_KEY_FILE)");
  app.add_option("--tls-ca", ctx.tls_ca, "PEM CA of a TLS server's certificate (env TESSERA_TLS_CA)");
  app.add_option("--tls-server-name", ctx.tls_server_name, "The name the server's certificate carries, when --server is another");
  tessera::server::AddServerCommands(app, ctx);
  tessera::cli::AddAccountCommands(app, ctx);
  tessera::cli::AddAdminCommands(app, ctx);
  tessera::cli::AddHealthCommand(app, ctx);
  tessera::cli::AddJobCommands(app, ctx);
  tessera::cli::AddArtifactCommands(app, ctx);
  tessera::cli::AddWorkerCommands(app, ctx);
  tessera::cli::AddBillingCommands(app, ctx);
  CLI11_PARSE(app, argc, argv);
  return ctx.exit_code;
}
