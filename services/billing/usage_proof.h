// Usage proofs: building one from a settlement batch's reports (server side) and checking one
// offline against its Merkle root (client side, `tessera billing verify-proof`).
#pragma once

#include "absl/status/status.h"
#include "services/billing/merkle.h"
#include "tessera/v1/billing.pb.h"

namespace tessera::billing {

// The leaf fields a proof carries.
UsageLeafFields LeafFieldsOf(const v1::UsageProof& proof);

// OK when the proof's report, index and path lead to its root; otherwise DATA_LOSS saying what does
// not match (a malformed hash is INVALID_ARGUMENT).
absl::Status VerifyUsageProof(const v1::UsageProof& proof);

}  // namespace tessera::billing
