#include "services/common/worker_signing.h"

#include <sodium.h>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "services/common/gpu_challenge_proof.h"

namespace tessera {
namespace {

static_assert(kPublicKeyBytes == crypto_sign_PUBLICKEYBYTES && kSignatureBytes == crypto_sign_BYTES);

// Appends `value` big-endian in `bytes` bytes.
void Put(std::string& out, uint64_t value, int bytes) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) out.push_back(static_cast<char>((value >> shift) & 0xFF));
}

std::string Domain(absl::string_view name) { return std::string(name) + std::string(1, '\0'); }

std::string Signature(const WorkerKeyPair& key, const std::string& message) {
  std::string signature(kSignatureBytes, '\0');
  crypto_sign_detached(reinterpret_cast<unsigned char*>(signature.data()), nullptr,
                       reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                       reinterpret_cast<const unsigned char*>(key.secret_key.data()));
  return signature;
}

bool Verify(absl::string_view public_key, const std::string& message, absl::string_view signature) {
  if (public_key.size() != kPublicKeyBytes || signature.size() != kSignatureBytes) return false;
  return crypto_sign_verify_detached(reinterpret_cast<const unsigned char*>(signature.data()),
                                     reinterpret_cast<const unsigned char*>(message.data()), message.size(),
                                     reinterpret_cast<const unsigned char*>(public_key.data())) == 0;
}

std::string Sha256(const std::string& bytes) {
  std::string digest(crypto_hash_sha256_BYTES, '\0');
  crypto_hash_sha256(reinterpret_cast<unsigned char*>(digest.data()), reinterpret_cast<const unsigned char*>(bytes.data()),
                     bytes.size());
  return digest;
}

std::string DeterministicSha256(const google::protobuf::Message& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return Sha256(bytes);
}

}  // namespace

WorkerKeyPair WorkerKeyPair::Generate() {
  WorkerKeyPair key{.public_key = std::string(kPublicKeyBytes, '\0'), .secret_key = std::string(crypto_sign_SECRETKEYBYTES, '\0')};
  crypto_sign_keypair(reinterpret_cast<unsigned char*>(key.public_key.data()), reinterpret_cast<unsigned char*>(key.secret_key.data()));
  return key;
}

WorkerKeyPair WorkerKeyPair::FromSeed(absl::string_view seed) {
  unsigned char padded[crypto_sign_SEEDBYTES] = {};
  std::copy_n(seed.begin(), std::min(seed.size(), sizeof padded), padded);
  WorkerKeyPair key{.public_key = std::string(kPublicKeyBytes, '\0'), .secret_key = std::string(crypto_sign_SECRETKEYBYTES, '\0')};
  crypto_sign_seed_keypair(reinterpret_cast<unsigned char*>(key.public_key.data()), reinterpret_cast<unsigned char*>(key.secret_key.data()),
                           padded);
  return key;
}

absl::StatusOr<WorkerKeyPair> WorkerKeyPair::FromSecretKey(absl::string_view secret_key) {
  if (secret_key.size() != crypto_sign_SECRETKEYBYTES) {
    return absl::InvalidArgumentError("an Ed25519 secret key is 64 bytes");
  }
  WorkerKeyPair key{.public_key = std::string(kPublicKeyBytes, '\0'), .secret_key = std::string(secret_key)};
  crypto_sign_ed25519_sk_to_pk(reinterpret_cast<unsigned char*>(key.public_key.data()),
                               reinterpret_cast<const unsigned char*>(key.secret_key.data()));
  return key;
}

std::string CanonicalUsage(int64_t worker_id, const v1::UsageReport& r) {
  // v2 adds the host's figures; a report without them keeps v1, which older workers sign.
  const bool host = r.cpu_ms() != 0 || r.peak_memory_mib() != 0;
  std::string out = Domain(host ? "tessera/usage/v2" : "tessera/usage/v1");
  Put(out, static_cast<uint64_t>(worker_id), 8);
  Put(out, static_cast<uint64_t>(r.job_id()), 8);
  Put(out, r.attempt(), 4);
  Put(out, r.seq(), 8);
  Put(out, static_cast<uint64_t>(r.gpu_ms()), 8);
  Put(out, static_cast<uint64_t>(r.measured_at_ms()), 8);
  Put(out, r.avg_gpu_utilization_ppm(), 4);
  Put(out, r.peak_gpu_memory_mib(), 8);
  Put(out, r.energy_mj(), 8);
  if (host) {
    Put(out, static_cast<uint64_t>(r.cpu_ms()), 8);
    Put(out, r.peak_memory_mib(), 8);
  }
  return out;
}

std::string CanonicalFinished(int64_t worker_id, const v1::JobFinished& f) {
  std::string out = Domain("tessera/finished/v1");
  Put(out, static_cast<uint64_t>(worker_id), 8);
  Put(out, static_cast<uint64_t>(f.job_id()), 8);
  Put(out, f.attempt(), 4);
  Put(out, f.succeeded() ? 1 : 0, 1);
  Put(out, f.last_usage_seq(), 8);
  out += DeterministicSha256(f.result());
  return out;
}

std::string CanonicalChallengeCommit(int64_t worker_id, const v1::ChallengeCommit& c) {
  std::string out = Domain("tessera/challenge-commit/v1");
  Put(out, static_cast<uint64_t>(worker_id), 8);
  Put(out, static_cast<uint64_t>(c.challenge_id()), 8);
  Put(out, static_cast<uint64_t>(c.gpus_size()), 4);
  for (const v1::GpuCommitment& g : c.gpus()) {
    Put(out, g.gpu_index(), 4);
    out += g.root();
    Put(out, g.elapsed_us(), 8);
  }
  return out;
}

std::string CanonicalChallengeOpening(int64_t worker_id, const v1::ChallengeOpening& o) {
  std::string out = Domain("tessera/challenge-opening/v1");
  Put(out, static_cast<uint64_t>(worker_id), 8);
  Put(out, static_cast<uint64_t>(o.challenge_id()), 8);
  Put(out, o.gpu_index(), 4);
  Put(out, static_cast<uint64_t>(o.rows_size()), 4);
  for (const v1::OpenedRow& r : o.rows()) {
    Put(out, r.row(), 4);
    out += Sha256(ChallengeRowLeaf(r.row(), r.values().data(), static_cast<uint32_t>(r.values_size())));
  }
  return out;
}

void SignUsage(const WorkerKeyPair& key, int64_t worker_id, v1::UsageReport* report) {
  report->set_signature(Signature(key, CanonicalUsage(worker_id, *report)));
}

void SignFinished(const WorkerKeyPair& key, int64_t worker_id, v1::JobFinished* finished) {
  finished->set_signature(Signature(key, CanonicalFinished(worker_id, *finished)));
}

void SignChallengeCommit(const WorkerKeyPair& key, int64_t worker_id, v1::ChallengeCommit* commit) {
  commit->set_signature(Signature(key, CanonicalChallengeCommit(worker_id, *commit)));
}

void SignChallengeOpening(const WorkerKeyPair& key, int64_t worker_id, v1::ChallengeOpening* opening) {
  opening->set_signature(Signature(key, CanonicalChallengeOpening(worker_id, *opening)));
}

bool VerifyChallengeCommit(absl::string_view public_key, int64_t worker_id, const v1::ChallengeCommit& commit) {
  return Verify(public_key, CanonicalChallengeCommit(worker_id, commit), commit.signature());
}

bool VerifyChallengeOpening(absl::string_view public_key, int64_t worker_id, const v1::ChallengeOpening& opening) {
  return Verify(public_key, CanonicalChallengeOpening(worker_id, opening), opening.signature());
}

bool VerifyUsage(absl::string_view public_key, int64_t worker_id, const v1::UsageReport& report) {
  return Verify(public_key, CanonicalUsage(worker_id, report), report.signature());
}

bool VerifyFinished(absl::string_view public_key, int64_t worker_id, const v1::JobFinished& finished) {
  return Verify(public_key, CanonicalFinished(worker_id, finished), finished.signature());
}

}  // namespace tessera
