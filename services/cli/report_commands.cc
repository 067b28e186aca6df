// `tessera billing usage|export|revenue`: reports over settled money (a provider's earnings by
// worker with --account; everything else is the admin's).
#include <iostream>

#include "services/cli/commands.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::cli {

void AddReportCommands(CLI::App& billing, CliContext& ctx) {
  auto from_ms = std::make_shared<int64_t>(0);
  auto to_ms = std::make_shared<int64_t>(0);
  auto group = std::make_shared<std::string>("customer");
  auto* usage = billing.add_subcommand("usage", "Settled usage grouped by customer, provider, gpu_model or region (admin)");
  auto account = std::make_shared<std::string>();
  usage->add_option("--group-by", *group, "customer, provider, gpu_model, region or worker")
      ->check(CLI::IsMember({"customer", "provider", "gpu_model", "region", "worker"}));
  usage->add_option("--account", *account, "Only this customer's or provider's usage (a provider's earnings)");
  usage->add_option("--from-ms", *from_ms, "Period start, Unix epoch ms (default: the beginning)");
  usage->add_option("--to-ms", *to_ms, "Period end, exclusive (default: now)");
  usage->callback([&ctx, from_ms, to_ms, group, account] {
    v1::GetUsageReportRequest request;
    request.set_account(*account);
    request.mutable_period()->set_from_ms(*from_ms);
    request.mutable_period()->set_to_ms(*to_ms);
    v1::UsageGroup g = v1::USAGE_GROUP_UNSPECIFIED;
    std::string name = "USAGE_GROUP_" + *group;
    for (char& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    v1::UsageGroup_Parse(name, &g);
    request.set_group_by(g);
    auto stub = v1::BillingService::NewStub(ctx.Channel());
    ShowPages<v1::UsageReportSummary>(
        ctx, request,
        [&](grpc::ClientContext* c, const v1::GetUsageReportRequest& q, v1::UsageReportSummary* p) { return stub->GetUsageReport(c, q, p); },
        [](v1::UsageReportSummary& p) { return p.mutable_rows(); },
        [&](const v1::UsageReportSummary& response) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::UsageGroupRow& r : response.rows()) {
            rows.push_back({r.key(), std::to_string(r.gpu_ms()), FormatTokens(r.charged_utok()), FormatTokens(r.fee_utok()),
                            std::to_string(r.reports()), std::to_string(r.jobs())});
          }
          PrintTable({*group, "GPU-MS", "CHARGED", "FEES", "REPORTS", "JOBS"}, rows);
        });
  });

  auto* exported = billing.add_subcommand("export", "Every settled usage report in a period, for accounting (admin)");
  auto format = std::make_shared<std::string>("csv");
  exported->add_option("--format", *format, "csv or jsonl")->check(CLI::IsMember({"csv", "jsonl"}));
  exported->add_option("--from-ms", *from_ms, "Period start, Unix epoch ms (default: the beginning)");
  exported->add_option("--to-ms", *to_ms, "Period end, exclusive (default: now)");
  exported->callback([&ctx, from_ms, to_ms, format] {
    v1::ExportUsageRequest request;
    request.mutable_period()->set_from_ms(*from_ms);
    request.mutable_period()->set_to_ms(*to_ms);
    request.set_format(*format == "jsonl" ? v1::EXPORT_FORMAT_JSON_LINES : v1::EXPORT_FORMAT_CSV);
    auto context = ctx.Call();
    auto reader = v1::BillingService::NewStub(ctx.Channel())->ExportUsage(context.get(), request);
    v1::ExportChunk chunk;
    while (reader->Read(&chunk)) std::cout << chunk.data();
    if (grpc::Status s = reader->Finish(); !s.ok()) ctx.exit_code = ReportError(s);
  });

  auto* revenue = billing.add_subcommand("revenue", "The platform's fee revenue in a period (admin)");
  revenue->add_option("--from-ms", *from_ms, "Period start, Unix epoch ms (default: the beginning)");
  revenue->add_option("--to-ms", *to_ms, "Period end, exclusive (default: now)");
  revenue->callback([&ctx, from_ms, to_ms] {
    v1::GetRevenueRequest request;
    request.mutable_period()->set_from_ms(*from_ms);
    request.mutable_period()->set_to_ms(*to_ms);
    auto stub = v1::BillingService::NewStub(ctx.Channel());
    Show<v1::Revenue>(
        ctx, [&](grpc::ClientContext* c, auto* out) { return stub->GetRevenue(c, request, out); },
        [](const v1::Revenue& r) {
          std::cout << "platform fees " << FormatTokens(r.fee_utok()) << " tokens over " << r.fee_transfers() << " fee transfers\n";
        });
  });
}

}  // namespace tessera::cli
