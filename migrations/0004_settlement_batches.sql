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

-- What settlement has charged each lease so far, apart from the lease row itself: settling then
-- never locks `assignments`, which usage ingest share-locks to keep a lease live while storing its
-- reports (so ingest and settlement run side by side).
CREATE TABLE lease_totals (
  job_id         bigint NOT NULL,
  attempt        int NOT NULL,
  worker_id      bigint NOT NULL,
  gpu_ms_total   bigint NOT NULL DEFAULT 0,
  charged_utok   bigint NOT NULL DEFAULT 0,
  fee_utok       bigint NOT NULL DEFAULT 0,
  usage_reports  bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, attempt, worker_id),
  FOREIGN KEY (job_id, attempt, worker_id) REFERENCES assignments
);
INSERT INTO lease_totals SELECT job_id, attempt, worker_id, gpu_ms_total, charged_utok, fee_utok, usage_reports FROM assignments;
ALTER TABLE assignments DROP COLUMN gpu_ms_total, DROP COLUMN charged_utok, DROP COLUMN fee_utok, DROP COLUMN usage_reports;
