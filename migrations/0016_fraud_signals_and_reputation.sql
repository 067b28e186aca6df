-- Fraud signals beyond rejected reports, and the inputs of reputation:
--  * a GPU UUID may appear on several workers (a clone of a machine, or a lie): the later worker
--    is registered QUARANTINED and both are signalled, instead of refusing it unseen;
--  * where a worker registered from (its /24, or /64 for IPv6), to see crowds of workers behind
--    one network, and how many workers a provider runs;
--  * per-lease telemetry sums kept by ingest (utilization weighted by GPU-ms, energy), from which
--    the reputation refresh computes each worker's robust anomaly score within its GPU model.

ALTER TABLE fraud_signals DROP CONSTRAINT fraud_signals_kind_check;
ALTER TABLE fraud_signals ADD CONSTRAINT fraud_signals_kind_check CHECK (kind IN (
  'BAD_SIGNATURE', 'REPLAYED_REPORT', 'FUTURE_DATED', 'OVER_CLAIM', 'UNLEASED_REPORT', 'BAD_RESULT_SIGNATURE',
  'DUPLICATE_GPU_UUID', 'SUBNET_CROWD', 'PROVIDER_FLEET', 'TELEMETRY_ANOMALY', 'ADMIN_QUARANTINE'));

ALTER TABLE gpus DROP CONSTRAINT gpus_uuid_key;
CREATE INDEX gpus_by_uuid ON gpus (uuid);

ALTER TABLE workers
  ADD COLUMN registered_subnet cidr,
  ADD COLUMN anomaly_score real NOT NULL DEFAULT 0 CHECK (anomaly_score >= 0),
  ADD COLUMN quarantine_reason text NOT NULL DEFAULT '';
CREATE INDEX workers_by_subnet ON workers (registered_subnet);
CREATE INDEX workers_by_provider ON workers (provider_account_id);

ALTER TABLE lease_ingest
  ADD COLUMN utilization_gpu_ms bigint NOT NULL DEFAULT 0,  -- Σ avg_gpu_utilization_ppm × gpu_ms / 10⁶
  ADD COLUMN energy_mj bigint NOT NULL DEFAULT 0,
  ADD COLUMN metered_gpu_ms bigint NOT NULL DEFAULT 0;       -- GPU-ms of the reports that carried a sampler's figures
