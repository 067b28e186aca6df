// TLS by configuration, with certificates made here by OpenSSL: the API port speaks TLS only, and
// the worker port is mutual TLS, so a machine without a certificate from the network's worker CA
// cannot connect at all, whatever API key it holds.
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "services/auth/tls.h"
#include "tests/integration/running_server.h"

namespace tessera {
namespace {

using testing::Ctx;

// A CA, a server certificate for 127.0.0.1/localhost, a worker client certificate from the same
// CA and a rogue one from a CA of its own, in a fresh temp dir.
struct Certificates {
  Certificates() {
    char tmpl[] = "/tmp/tessera-tls-XXXXXX";
    dir = mkdtemp(tmpl);
    const std::string d = dir.string();
    std::ofstream(d + "/server.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
    std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
    const std::string key = "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "(cd " + d + " && " + key + " -x509 -days 2 -keyout ca.key -out ca.pem -subj /CN=tessera-test-ca" + " && " + key +
        " -keyout server.key -out server.csr -subj /CN=localhost" +
        " && openssl x509 -req -days 2 -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile server.ext -out server.pem" +
        " && " + key + " -keyout worker.key -out worker.csr -subj /CN=worker-1" +
        " && openssl x509 -req -days 2 -in worker.csr -CA ca.pem -CAkey ca.key -CAcreateserial -extfile client.ext -out worker.pem" +
        " && " + key + " -x509 -days 2 -keyout rogue.key -out rogue.pem -subj /CN=rogue) >/dev/null 2>&1";
    REQUIRE(std::system(script.c_str()) == 0);
  }
  ~Certificates() { std::filesystem::remove_all(dir); }
  std::filesystem::path File(const std::string& name) const { return dir / name; }
  std::filesystem::path dir;
};

std::shared_ptr<grpc::Channel> TlsChannel(int port, const std::string& key, const auth::ClientTlsFiles& files) {
  auto credentials = auth::ClientCredentials(files);
  REQUIRE(credentials.ok());
  return auth::AuthenticatedChannel("127.0.0.1:" + std::to_string(port), key, *credentials);
}

TEST_CASE("TLS on the API port and mutual TLS on the worker port", "[integration][auth][tls]") {
  Certificates certs;
  testing::RunningServer s([&](server::ServerOptions& o) {
    o.tls_cert_file = certs.File("server.pem");
    o.tls_key_file = certs.File("server.key");
    o.worker_listen_address = "127.0.0.1:0";
    o.worker_ca_file = certs.File("ca.pem");
  });
  REQUIRE(s.server->worker_port() > 0);
  const std::string admin_key = testing::AdminKeyFor(s.db.url());
  const auth::ClientTlsFiles trusting{.ca = certs.File("ca.pem"), .cert = {}, .key = {}};

  // The API port: TLS works, plaintext does not reach it.
  auto api = TlsChannel(s.server->port(), admin_key, trusting);
  testing::CreateFundedMarket(api);
  v1::ListAccountsResponse accounts;
  CHECK(v1::AdminService::NewStub(testing::ChannelTo(*s.server))->ListAccounts(Ctx().get(), {}, &accounts).error_code() ==
        grpc::StatusCode::UNAVAILABLE);
  // A client that does not trust the server's CA refuses it.
  auto untrusting = TlsChannel(s.server->port(), admin_key, {.ca = certs.File("rogue.pem"), .cert = {}, .key = {}});
  CHECK(v1::AdminService::NewStub(untrusting)->ListAccounts(Ctx().get(), {}, &accounts).error_code() == grpc::StatusCode::UNAVAILABLE);
  // Workers are served on their own port only.
  v1::ListWorkersResponse workers;
  CHECK(v1::WorkerService::NewStub(api)->ListWorkers(Ctx().get(), {}, &workers).error_code() == grpc::StatusCode::UNIMPLEMENTED);

  const std::string provider_key = testing::IssueKey(s.db.url(), v1::ROLE_PROVIDER, "gpuco");
  const int port = s.server->worker_port();
  // With the provider's key but no client certificate, or one from another CA: no connection.
  for (const auth::ClientTlsFiles& files :
       {trusting, auth::ClientTlsFiles{.ca = certs.File("ca.pem"), .cert = certs.File("rogue.pem"), .key = certs.File("rogue.key")}}) {
    auto refused = TlsChannel(port, provider_key, files);
    const grpc::Status st = v1::WorkerService::NewStub(refused)->ListWorkers(Ctx().get(), {}, &workers);
    CHECK(st.error_code() == grpc::StatusCode::UNAVAILABLE);
    grpc::ClientContext ctx;
    auto stream = v1::WorkerService::NewStub(refused)->Connect(&ctx);
    v1::ServerMessage in;
    CHECK_FALSE(stream->Read(&in));
    CHECK(stream->Finish().error_code() == grpc::StatusCode::UNAVAILABLE);
  }
  CHECK(s.db.Scalar("SELECT count(*) FROM workers") == "0");

  // A machine with the network's certificate registers and is welcomed on its stream.
  auto worker = TlsChannel(port, provider_key, {.ca = certs.File("ca.pem"), .cert = certs.File("worker.pem"), .key = certs.File("worker.key")});
  const int64_t id = testing::RegisterWorker(worker, 1'000'000, 1, "GPU-tls");
  testing::WorkerConnection connection(worker, id);
  v1::SubmitJobResponse submitted;
  CHECK(v1::JobService::NewStub(worker)->SubmitJob(Ctx().get(), testing::SleepRequest("tls", 2'000'000), &submitted).error_code() ==
        grpc::StatusCode::UNIMPLEMENTED);
}

TEST_CASE("TLS options that cannot work are refused at start with the reason", "[integration][auth][tls]") {
  testing::TestDatabase db;
  auto start = [&](const std::function<void(server::ServerOptions&)>& customize) {
    server::ServerOptions o;
    o.listen_address = "127.0.0.1:0";
    o.database_url = db.url();
    customize(o);
    return server::TesseraServer::Start(o).status();
  };
  const absl::Status half = start([](server::ServerOptions& o) { o.tls_cert_file = "/nonexistent.pem"; });
  CHECK(half.message() == "--tls-cert and --tls-key go together");
  const absl::Status missing = start([](server::ServerOptions& o) {
    o.tls_cert_file = "/nonexistent.pem";
    o.tls_key_file = "/nonexistent.key";
  });
  CHECK(absl::IsNotFound(missing));
  const absl::Status ca_alone = start([](server::ServerOptions& o) { o.worker_ca_file = "/ca.pem"; });
  CHECK(ca_alone.message() == "--worker-ca needs --worker-listen: mutual TLS is for the worker port");
  const absl::Status ca_plaintext = start([](server::ServerOptions& o) {
    o.worker_listen_address = "127.0.0.1:0";
    o.worker_ca_file = "/ca.pem";
  });
  CHECK(ca_plaintext.message() == "mutual TLS (a client CA) needs --tls-cert and --tls-key");
  const absl::Status no_scheduler = start([](server::ServerOptions& o) {
    o.services = {"intake", "billing"};
    o.worker_listen_address = "127.0.0.1:0";
  });
  CHECK(no_scheduler.message() == "--worker-listen needs the scheduler service: the worker port serves WorkerService");
}

}  // namespace
}  // namespace tessera
