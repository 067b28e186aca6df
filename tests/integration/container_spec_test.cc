// Container jobs at intake (issue 18), on a real PostgreSQL: the artifacts a spec names must be
// its account's (a precise error otherwise, nothing written), and the secrets it carries reach the
// worker's assignment but never come back through the API.
#include <catch2/catch.hpp>

#include "services/common/sha256.h"
#include "tests/integration/marketplace_fixture.h"

using namespace tessera;
using testing::Marketplace;

namespace {

struct Containers : testing::FundedMarketplace {
  Containers() { CreateAccount("globex", v1::ACCOUNT_KIND_CUSTOMER); }

  // An artifact row as ArtifactRepository::Record writes it (the bytes do not matter here).
  std::string Hold(const std::string& account, const std::string& content, const std::string& kind) {
    const std::string digest = DigestOf(content);
    db.Scalar("INSERT INTO blobs (digest, size_bytes) VALUES ('" + digest + "', 1) ON CONFLICT DO NOTHING");
    db.Scalar("INSERT INTO artifacts (account_id, digest, size_bytes, name, kind) SELECT account_id, '" + digest + "', 1, 'x', '" + kind +
              "' FROM accounts WHERE name = '" + account + "'");
    return digest;
  }

  static v1::SubmitJobRequest Container(const std::string& request_id, const std::string& input, const std::string& code) {
    v1::SubmitJobRequest r = Marketplace::SleepJob("acme", request_id, 2'000'000);
    v1::ContainerParams* c = r.mutable_spec()->mutable_container();  // replaces the sleep workload
    r.mutable_spec()->clear_kind();
    c->add_command("python3");
    c->add_command("/job/code/train.py");
    (*c->mutable_secrets())["hf_token"] = "hf_s3cr3t";
    v1::ContainerInput* in = c->add_inputs();
    in->set_artifact(input);
    in->set_path("train.csv");
    c->set_code(code);
    return r;
  }
};

}  // namespace

TEST_CASE("a container job names only its account's artifacts, and its secrets never come back", "[integration][intake]") {
  Containers m;
  const std::string data = m.Hold("acme", "train.csv bytes", "FILE");
  const std::string code = m.Hold("acme", "code bundle bytes", "BUNDLE");
  const std::string theirs = m.Hold("globex", "globex's data", "FILE");
  const int64_t available = m.Balance("acme").available_utok();

  auto unknown = m.jobs.Submit(Containers::Container("r1", theirs, code));
  CHECK(unknown.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(unknown.status().message()) ==
        "spec.container.inputs[0].artifact: " + theirs + " is not an artifact of account 'acme' (tessera artifact put)");
  auto not_bundle = m.jobs.Submit(Containers::Container("r2", data, data));
  CHECK_THAT(std::string(not_bundle.status().message()), Catch::StartsWith("spec.container.code: " + data + " is a FILE artifact"));
  CHECK(m.db.Scalar("SELECT count(*) FROM jobs") == "0");
  CHECK(m.Balance("acme").available_utok() == available);  // nothing held

  auto accepted = m.jobs.Submit(Containers::Container("r3", data.substr(7), code));  // bare hex is the same artifact
  INFO(accepted.status().ToString());
  REQUIRE(accepted.ok());
  CHECK(accepted->job.spec().container().secrets().at("hf_token") == "<redacted>");
  auto read = m.jobs.Get(accepted->job.job_id());
  REQUIRE(read.ok());
  CHECK(read->spec().container().secrets().at("hf_token") == "<redacted>");
  CHECK(read->spec().container().command(1) == "/job/code/train.py");
  // A retry with the same request is the same job (the stored spec, secrets and all, compares equal).
  auto retried = m.jobs.Submit(Containers::Container("r3", data.substr(7), code));
  REQUIRE(retried.ok());
  CHECK(retried->deduplicated);

  // The worker that runs it gets the secret in its assignment.
  const int64_t worker = m.RegisterWorker("gpuco", "w9", 1'000'000, 1);
  auto assigned = m.MatchOnce({Marketplace::Offer(worker, 1'000'000, 1)});
  REQUIRE(assigned.size() == 1);
  CHECK(assigned[0].message.spec().container().secrets().at("hf_token") == "hf_s3cr3t");
}
