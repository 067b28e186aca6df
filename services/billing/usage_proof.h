// Usage proofs: building one from a settlement batch's reports (server side) and checking one
// offline against its Merkle root (client side, `tessera billing verify-proof`).
#pragma once

#include "absl/status/status.h"
#include "services/common/merkle.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

// The canonical encoding of one settled usage report (documented in billing.proto, UsageProof):
// 60 bytes, every field big-endian two's complement (attempt 4 bytes, the others 8), in this order.
struct UsageLeafFields {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  int64_t worker_id = 0;
  uint64_t seq = 0;
  int64_t gpu_ms = 0;
  int64_t measured_at_ms = 0;
  int64_t charge_utok = 0;
  int64_t fee_utok = 0;
};
std::string UsageLeaf(const UsageLeafFields& f);

// The leaf fields a proof carries, and setting them.
UsageLeafFields LeafFieldsOf(const v1::UsageProof& proof);
void SetLeafFields(const UsageLeafFields& f, v1::UsageProof* proof);

// OK when the proof's report, index and path lead to its root; otherwise DATA_LOSS saying what does
// not match (a malformed hash is INVALID_ARGUMENT).
absl::Status VerifyUsageProof(const v1::UsageProof& proof);

}  // namespace tessera::billing
