#include "services/common/sha256.h"

#include <openssl/evp.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tessera {

struct Sha256::Context {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  ~Context() { EVP_MD_CTX_free(ctx); }
};

namespace {

// OpenSSL fails these only when out of memory or misbuilt: nothing a caller could handle.
void Check(int ok) {
  if (ok != 1) std::abort();
}

}  // namespace

Sha256::Sha256() : context_(std::make_unique<Context>()) {
  if (context_->ctx == nullptr) std::abort();
  Check(EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr));
}

Sha256::~Sha256() = default;

void Sha256::Update(std::string_view bytes) { Check(EVP_DigestUpdate(context_->ctx, bytes.data(), bytes.size())); }

Hash Sha256::Finish() {
  Hash out;
  unsigned int length = 0;
  Check(EVP_DigestFinal_ex(context_->ctx, out.data(), &length));
  Check(EVP_DigestInit_ex(context_->ctx, EVP_sha256(), nullptr));
  return out;
}

std::string DigestName(const Hash& sha256) { return std::string(kDigestPrefix) + ToHex(sha256); }

std::string DigestOf(std::string_view bytes) {
  Sha256 sha256;
  sha256.Update(bytes);
  return DigestName(sha256.Finish());
}

absl::StatusOr<std::string> ParseDigest(std::string_view digest, std::string_view field) {
  const auto invalid = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat(std::string(field), ": '", std::string(digest.substr(0, 80)), "' is not a digest; expected sha256: and 64 hex digits"));
  };
  // Bare hex too, as sha256sum prints it.
  const std::string_view named = digest.starts_with(kDigestPrefix) ? digest.substr(kDigestPrefix.size()) : digest;
  std::string hex = absl::AsciiStrToLower(std::string(named));
  if (hex.size() != 64) return invalid();
  for (char c : hex) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return invalid();
  }
  return std::string(kDigestPrefix) + hex;
}

absl::Status HashFileInto(const std::filesystem::path& path, Sha256& sha) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int error = errno;
    const std::string message = absl::StrCat("cannot read ", path.string(), ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InternalError(message);
  }
  std::string block(size_t{1} << 20, '\0');
  while (in) {
    in.read(block.data(), static_cast<std::streamsize>(block.size()));
    sha.Update(std::string_view(block.data(), static_cast<size_t>(in.gcount())));
  }
  if (in.bad()) return absl::InternalError(absl::StrCat("cannot read ", path.string()));
  return absl::OkStatus();
}

absl::StatusOr<Hash> Sha256OfFile(const std::filesystem::path& path) {
  Sha256 sha;
  if (absl::Status s = HashFileInto(path, sha); !s.ok()) return s;
  return sha.Finish();
}

}  // namespace tessera
