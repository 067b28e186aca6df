-- Each settlement batch commits to the usage reports it settled with the SHA-256 Merkle root of
-- their canonical encodings (billing.proto, UsageProof), in leaf order. Append-only.
CREATE TABLE settlement_batches (
  batch_id      bigserial PRIMARY KEY,
  merkle_root   bytea NOT NULL CHECK (length(merkle_root) = 32),
  reports       int NOT NULL CHECK (reports > 0),
  charged_utok  bigint NOT NULL CHECK (charged_utok >= 0),  -- charges including fees
  fee_utok      bigint NOT NULL CHECK (fee_utok >= 0),
  created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER settlement_batches_append_only BEFORE UPDATE OR DELETE ON settlement_batches
  FOR EACH ROW EXECUTE FUNCTION transfers_are_append_only();

ALTER TABLE usage_reports
  ADD COLUMN batch_id bigint REFERENCES settlement_batches,
  ADD COLUMN leaf_index int CHECK (leaf_index >= 0),
  -- NOT VALID: reports settled before batches existed keep no batch; every new one has one.
  ADD CONSTRAINT settled_in_a_batch CHECK (NOT settled OR (batch_id IS NOT NULL AND leaf_index IS NOT NULL)) NOT VALID;
CREATE UNIQUE INDEX usage_reports_by_leaf ON usage_reports (batch_id, leaf_index) WHERE batch_id IS NOT NULL;
