// `tessera billing proof|verify-proof|batches`: Merkle-committed settlement, checkable offline.
#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <iostream>
#include <sstream>

#include "services/common/merkle.h"
#include "services/billing/usage_proof.h"
#include "services/cli/commands.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::cli {
namespace {

std::string HexOf(const std::string& bytes) {
  Hash h{};
  if (bytes.size() != h.size()) return "(" + std::to_string(bytes.size()) + " bytes)";
  std::copy(bytes.begin(), bytes.end(), h.begin());
  return ToHex(h);
}

}  // namespace

void AddProofCommands(CLI::App& billing, CliContext& ctx) {
  auto* proof = billing.add_subcommand("proof", "A settled usage report's Merkle inclusion proof (save with -o json)");
  auto job_id = std::make_shared<int64_t>(0);
  auto seq = std::make_shared<uint64_t>(0);
  auto attempt = std::make_shared<uint32_t>(0);
  auto worker = std::make_shared<int64_t>(0);
  proof->add_option("job_id", *job_id)->required();
  proof->add_option("seq", *seq, "The report's sequence number")->required();
  proof->add_option("--attempt", *attempt, "When the job has such a report on several attempts");
  proof->add_option("--worker", *worker, "When several workers of a spread job have such a report");
  proof->callback([&ctx, job_id, seq, attempt, worker] {
    v1::GetUsageProofRequest request;
    request.set_job_id(*job_id);
    request.set_seq(*seq);
    request.set_attempt(*attempt);
    request.set_worker_id(*worker);
    auto stub = v1::BillingService::NewStub(ctx.Channel());
    Show<v1::UsageProof>(
        ctx, [&](grpc::ClientContext* c, v1::UsageProof* out) { return stub->GetUsageProof(c, request, out); },
        [](const v1::UsageProof& p) {
          PrintTable({"JOB", "ATTEMPT", "WORKER", "SEQ", "GPU-MS", "CHARGE", "FEE", "BATCH", "LEAF"},
                     {{std::to_string(p.job_id()), std::to_string(p.attempt()), std::to_string(p.worker_id()),
                       std::to_string(p.seq()), std::to_string(p.gpu_ms()), FormatTokens(p.charge_utok()),
                       FormatTokens(p.fee_utok()), std::to_string(p.batch_id()),
                       std::to_string(p.leaf_index()) + " of " + std::to_string(p.tree_size())}});
          std::cout << "root " << HexOf(p.merkle_root()) << "\n";
          for (const std::string& h : p.path()) std::cout << "path " << HexOf(h) << "\n";
        });
  });

  auto* verify = billing.add_subcommand("verify-proof", "Check a saved proof offline (exit 0 iff it holds)");
  auto file = std::make_shared<std::string>();
  verify->add_option("file", *file, "JSON from `tessera billing proof … -o json`; - for standard input")->required();
  verify->callback([&ctx, file] {
    std::stringstream text;
    if (*file == "-") {
      text << std::cin.rdbuf();
    } else {
      std::ifstream in(*file);
      if (!in) {
        std::cerr << "error: cannot read " << *file << "\n";
        ctx.exit_code = 2;
        return;
      }
      text << in.rdbuf();
    }
    v1::UsageProof proof;
    if (auto parsed = google::protobuf::util::JsonStringToMessage(text.str(), &proof); !parsed.ok()) {
      std::cerr << "error: not a UsageProof: " << parsed.ToString() << "\n";
      ctx.exit_code = 2;
      return;
    }
    if (absl::Status s = billing::VerifyUsageProof(proof); !s.ok()) {
      std::cerr << "proof FAILS: " << s.message() << "\n";
      ctx.exit_code = 1;
      return;
    }
    std::cout << "proof holds: job " << proof.job_id() << " seq " << proof.seq() << " is leaf " << proof.leaf_index() << " of "
              << proof.tree_size() << " in settlement batch " << proof.batch_id() << " (root " << HexOf(proof.merkle_root())
              << ")\n";
  });

  auto* batches = billing.add_subcommand("batches", "Settlement batches and their Merkle roots, newest first (admin)");
  auto page_size = std::make_shared<uint32_t>(20);
  batches->add_option("--limit", *page_size, "How many")->check(CLI::Range(1, 500));
  batches->callback([&ctx, page_size] {
    v1::ListSettlementBatchesRequest request;
    request.set_page_size(*page_size);
    auto stub = v1::BillingService::NewStub(ctx.Channel());
    Show<v1::ListSettlementBatchesResponse>(
        ctx, [&](grpc::ClientContext* c, auto* out) { return stub->ListSettlementBatches(c, request, out); },
        [](const v1::ListSettlementBatchesResponse& response) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::SettlementBatch& b : response.batches()) {
            rows.push_back({std::to_string(b.batch_id()), std::to_string(b.reports()), FormatTokens(b.charged_utok()),
                            FormatTokens(b.fee_utok()), HexOf(b.merkle_root())});
          }
          PrintTable({"BATCH", "REPORTS", "CHARGED", "FEES", "MERKLE ROOT"}, rows);
        });
  });
}

}  // namespace tessera::cli
