// The names tessera.v1 enum values are stored and shown under: the proto name without the enum's
// prefix (FRAUD_SIGNAL_KIND_BAD_SIGNATURE → "BAD_SIGNATURE", CHALLENGE_OUTCOME_PASSED → "PASSED"),
// read from the generated descriptors so that a new value needs no table. Ledger buckets are
// stored in lower case, the treasury's as "main" (migrations/0001).
#pragma once

#include <google/protobuf/generated_enum_reflection.h>

#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "tessera/v1/billing.pb.h"

namespace tessera {

// "FRAUD_SIGNAL_KIND_": every value of a tessera.v1 enum starts with the prefix of its UNSPECIFIED.
template <typename E>
std::string EnumPrefix() {
  const std::string& unspecified = google::protobuf::GetEnumDescriptor<E>()->value(0)->name();
  return unspecified.substr(0, unspecified.size() - std::string_view("UNSPECIFIED").size());
}

template <typename E>
std::string StoredName(E value) {
  const google::protobuf::EnumValueDescriptor* v = google::protobuf::GetEnumDescriptor<E>()->FindValueByNumber(value);
  if (v == nullptr) return "UNSPECIFIED";
  return v->name().substr(EnumPrefix<E>().size());
}

// nullopt for a name that is no value of E (UNSPECIFIED included).
template <typename E>
std::optional<E> ParseStoredName(std::string_view name) {
  const google::protobuf::EnumValueDescriptor* v =
      google::protobuf::GetEnumDescriptor<E>()->FindValueByName(EnumPrefix<E>() + std::string(name));
  if (v == nullptr || v->number() == 0) return std::nullopt;
  return static_cast<E>(v->number());
}

inline std::string LedgerBucketStoredName(v1::LedgerBucket bucket) {
  return bucket == v1::LEDGER_BUCKET_TREASURY ? "main" : absl::AsciiStrToLower(StoredName(bucket));
}

inline v1::LedgerBucket ParseLedgerBucket(std::string_view stored) {
  if (stored == "main") return v1::LEDGER_BUCKET_TREASURY;
  return ParseStoredName<v1::LedgerBucket>(absl::AsciiStrToUpper(std::string(stored))).value_or(v1::LEDGER_BUCKET_UNSPECIFIED);
}

}  // namespace tessera
