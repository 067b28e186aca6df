-- What a CHARGE or FEE transfer pays for, as columns rather than only inside its idempotency key:
-- the usage reports of lease (job_id, attempt, worker_id) settled in batch batch_id. No foreign
-- keys, for the reason of 0008: settlement writes them in the transaction that inserts the batch.
ALTER TABLE transfers
  ADD COLUMN attempt int,
  ADD COLUMN worker_id bigint,
  ADD COLUMN batch_id bigint;
CREATE INDEX transfers_by_batch ON transfers (batch_id) WHERE batch_id IS NOT NULL;
