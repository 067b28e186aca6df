#include "services/cli/cli_context.h"

#include <google/protobuf/util/json_util.h>
#include <sodium.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "services/auth/client_channel.h"
#include "services/auth/tls.h"

namespace tessera::cli {

std::shared_ptr<grpc::Channel> CliContext::Channel() const {
  std::string key = api_key;
  if (!key.empty()) {
    if (absl::Status s = auth::ValidateApiKeyText(key, "--api-key (or TESSERA_API_KEY)"); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      key.clear();  // sent without a key, the call fails UNAUTHENTICATED instead of aborting in gRPC
    }
  } else if (!api_key_file.empty()) {
    absl::StatusOr<std::string> read = auth::ReadApiKeyFile(api_key_file);
    if (read.ok()) {
      key = *read;
    } else {
      std::cerr << "error: " << read.status().message() << "\n";
    }
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = auth::ClientCredentials({.ca = tls_ca, .cert = {}, .key = {}});
  if (!credentials.ok()) {
    std::cerr << "error: " << credentials.status().message() << "\n";
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments args;
  if (!tls_server_name.empty()) args.SetSslTargetNameOverride(tls_server_name);
  return auth::AuthenticatedChannel(server, key, *credentials, args);
}

std::unique_ptr<grpc::ClientContext> CliContext::Call() const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(timeout_ms));
  return context;
}

int ReportError(const grpc::Status& status) {
  static const char* const kCodes[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
                                       "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
                                       "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const int code = status.error_code();
  std::cerr << "error: " << (code >= 0 && code <= 16 ? kCodes[code] : "UNKNOWN") << ": " << status.error_message() << "\n";
  return 1;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

namespace {
bool tables_as_csv = false;

std::string CsvField(const std::string& field) {
  if (field.find_first_of(",\"\r\n") == std::string::npos) return field;
  std::string quoted = "\"";
  for (char c : field) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
  return quoted + "\"";
}
}  // namespace

void PrintTablesAsCsv(bool csv) { tables_as_csv = csv; }

std::string Printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\x%02x", byte);
      out += escaped;
    } else {
      out += c;
    }
  }
  return out;
}

void PrintTable(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& raw_rows) {
  // Cells hold what users typed (names, regions, labels, reasons): never terminal control codes.
  std::vector<std::vector<std::string>> rows;
  rows.reserve(raw_rows.size());
  for (const auto& raw : raw_rows) {
    std::vector<std::string>& row = rows.emplace_back();
    for (const std::string& cell : raw) row.push_back(Printable(cell));
  }
  if (tables_as_csv) {
    auto print_csv = [](const std::vector<std::string>& row) {
      std::string line;
      for (size_t i = 0; i < row.size(); ++i) line += (i > 0 ? "," : "") + CsvField(row[i]);
      std::cout << line << "\r\n";
    };
    print_csv(header);
    for (const auto& row : rows) print_csv(row);
    return;
  }
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) width[i] = std::max(width[i], row[i].size());
  }
  auto print = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  };
  print(header);
  for (const auto& row : rows) print(row);
}

std::string UtcTime(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

std::string FormatTokens(int64_t utok) {
  const bool negative = utok < 0;
  const uint64_t magnitude = negative ? -static_cast<uint64_t>(utok) : static_cast<uint64_t>(utok);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%s%llu.%06llu", negative ? "-" : "", static_cast<unsigned long long>(magnitude / 1'000'000),
                static_cast<unsigned long long>(magnitude % 1'000'000));
  return buf;
}

std::string Percent(uint32_t ppm) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%u.%u%%", ppm / 10'000, (ppm / 1'000) % 10);
  return buf;
}

std::string RandomIdempotencyKey() {
  unsigned char bytes[12];
  randombytes_buf(bytes, sizeof bytes);
  char hex[25];
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  return hex;
}

}  // namespace tessera::cli
