-- Signed usage: each worker's Ed25519 public key (registered with the machine), each usage report's
-- signature (kept, so that anyone can check what the worker attested), a per-lease record of what
-- was reported so far (the replay and over-claim checks read it instead of summing the reports),
-- and fraud signals: every rejected report, with its evidence.

ALTER TABLE workers ADD COLUMN public_key bytea CHECK (length(public_key) = 32);
ALTER TABLE usage_reports ADD COLUMN signature bytea CHECK (length(signature) = 64);

-- Written by ingest only (one writer: the scheduler leader's ingest thread), in the transaction
-- that stores the reports.
CREATE TABLE lease_ingest (
  job_id            bigint NOT NULL,
  attempt           int NOT NULL,
  worker_id         bigint NOT NULL,
  last_seq          bigint NOT NULL CHECK (last_seq >= 0),
  gpu_ms_reported   bigint NOT NULL CHECK (gpu_ms_reported >= 0),
  PRIMARY KEY (job_id, attempt, worker_id)
);
INSERT INTO lease_ingest (job_id, attempt, worker_id, last_seq, gpu_ms_reported)
  SELECT u.job_id, u.attempt, u.worker_id, max(u.seq), sum(u.gpu_ms)
  FROM usage_reports u JOIN assignments a ON a.job_id = u.job_id AND a.attempt = u.attempt AND a.worker_id = u.worker_id
  WHERE a.state = 'LIVE' GROUP BY u.job_id, u.attempt, u.worker_id;

CREATE TABLE fraud_signals (
  signal_id   bigserial PRIMARY KEY,
  worker_id   bigint NOT NULL REFERENCES workers,
  kind        text NOT NULL CHECK (kind IN ('BAD_SIGNATURE', 'REPLAYED_REPORT', 'FUTURE_DATED', 'OVER_CLAIM', 'UNLEASED_REPORT',
                                            'BAD_RESULT_SIGNATURE')),
  job_id      bigint,
  attempt     int,
  seq         bigint,
  -- What the worker sent and why it was refused, in words an operator can check.
  evidence    text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fraud_signals_by_worker ON fraud_signals (worker_id, signal_id);
