// What every `tessera` client subcommand shares: the server address, the API key, the output
// format, a channel, a deadline on every call, and printing (human tables or JSON).
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <google/protobuf/message.h>

namespace tessera::cli {

struct CliContext {
  std::string server = "127.0.0.1:7070";
  std::string output = "table";  // table | csv | json
  int timeout_ms = 10'000;
  // --api-key (env TESSERA_API_KEY) wins over --api-key-file (env TESSERA_API_KEY_FILE).
  std::string api_key;
  std::string api_key_file;
  // The CA that signed a TLS server's certificate (env TESSERA_TLS_CA); empty: plaintext.
  std::string tls_ca;
  std::string tls_server_name;  // checked against the certificate instead of --server's host
  int exit_code = 0;  // set by the subcommand that ran

  // Sends the API key with every call. An unreadable key file is reported on stderr and the call
  // goes without a key (the server then answers UNAUTHENTICATED).
  std::shared_ptr<grpc::Channel> Channel() const;
  // A context with this command's deadline.
  std::unique_ptr<grpc::ClientContext> Call() const;
  bool json() const { return output == "json"; }
};

// Prints a failed call as "error: CODE: message" on stderr and returns the exit code (1).
int ReportError(const grpc::Status& status);

// One protobuf message as a line of JSON (field names as in the .proto).
std::string ToJson(const google::protobuf::Message& message);

// Tables print as CSV (RFC 4180: a header line, fields quoted when needed) instead of aligned
// columns; set from `-o csv`.
void PrintTablesAsCsv(bool csv);

// `text` with control characters escaped as \xNN, so that printing it cannot drive the terminal.
std::string Printable(std::string_view text);

// Prints rows as an aligned table with a header (or as CSV, see above), every cell Printable.
void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// A fresh key for a money call the user gave no --idempotency-key for (24 hex characters).
std::string RandomIdempotencyKey();

// 12345678 µT → "12.345678" (exact, integer arithmetic).
std::string FormatTokens(int64_t utok);

// ms since the Unix epoch → "2026-12-07 19:45:00 UTC".
std::string UtcTime(int64_t unix_ms);

// 834000 ppm → "83.4%".
std::string Percent(uint32_t ppm);

// Runs one unary call, `call(grpc::ClientContext*, Response*)`, and shows its answer: the error on
// stderr (exit code 1), the response as JSON with -o json, or else `print(response)`.
template <typename Response, typename Print>
void ShowResult(CliContext& ctx, const grpc::Status& s, const Response& response, Print&& print) {
  if (!s.ok()) {
    ctx.exit_code = ReportError(s);
  } else if (ctx.json()) {
    std::cout << ToJson(response) << "\n";
  } else {
    print(response);
  }
}

template <typename Response, typename Call, typename Print>
void Show(CliContext& ctx, Call&& call, Print&& print) {
  Response response;
  grpc::Status s = call(ctx.Call().get(), &response);
  ShowResult(ctx, s, response, print);
}

// Runs a List call page after page, `call(grpc::ClientContext*, const Request&, Response*)`, and
// gathers into `out` the first page with every later page's `items(page)` appended, up to `limit`
// items: the CLI shows a whole list however the server pages it. `out`'s next_page_token is the
// token after the last page read (empty when the list was read to its end).
template <typename Request, typename Response, typename Call, typename Items>
grpc::Status FetchPages(const CliContext& ctx, Request request, Response* out, Call&& call, Items&& items, int limit = 100'000) {
  for (bool first = true;; first = false) {
    Response page;
    grpc::Status s = call(ctx.Call().get(), request, &page);
    if (!s.ok()) return s;
    if (first) {
      *out = page;
      items(*out)->Clear();
    }
    for (auto& item : *items(page)) {
      if (items(*out)->size() >= limit) break;
      *items(*out)->Add() = std::move(item);
    }
    out->set_next_page_token(page.next_page_token());
    if (page.next_page_token().empty() || items(*out)->size() >= limit) return s;
    request.set_page_token(page.next_page_token());
  }
}

// Show for a List call: every page (FetchPages, up to `limit` items), then shown as one response.
template <typename Response, typename Request, typename Call, typename Items, typename Print>
void ShowPages(CliContext& ctx, const Request& request, Call&& call, Items&& items, Print&& print, int limit = 100'000) {
  Response response;
  grpc::Status s = FetchPages(ctx, request, &response, call, items, limit);
  ShowResult(ctx, s, response, print);
}

}  // namespace tessera::cli
