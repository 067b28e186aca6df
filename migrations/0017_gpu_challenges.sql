-- Proof of GPU: a worker stays PENDING_VERIFICATION (never matched) until it passes a challenge
-- (proto/tessera/v1/workers.proto, "Proof of GPU"), and an idle ACTIVE worker is challenged again
-- at random. Every challenge is kept with what the worker committed to and the verdict, so that an
-- operator can check the evidence of a CHALLENGE_FAILED quarantine before lifting it.

ALTER TABLE workers ADD COLUMN verified_at timestamptz;  -- its last pass (or an admin's release); NULL: never
-- Workers registered before this migration ran have been trusted so far; they are challenged at
-- their next random re-check like any other.
UPDATE workers SET verified_at = created_at;

CREATE TABLE gpu_challenges (
  challenge_id     bigserial PRIMARY KEY,
  worker_id        bigint NOT NULL REFERENCES workers (worker_id),
  reason           text NOT NULL CHECK (reason IN ('REGISTRATION', 'RECHECK')),
  outcome          text NOT NULL DEFAULT 'PENDING' CHECK (outcome IN ('PENDING', 'PASSED', 'FAILED', 'ABANDONED')),
  -- Per GPU, in index order: {"gpu_index", "model", "seed" (decimal text: a uint64), "n", and once
  -- committed "root" (hex), "elapsed_us", then "rows" (the opened row indexes)}.
  gpus             jsonb NOT NULL,
  commit_signature bytea,
  observed_ms      bigint,         -- the server's clock from sending the challenge to the commitment
  detail           text NOT NULL DEFAULT '',
  issued_at        timestamptz NOT NULL DEFAULT now(),
  committed_at     timestamptz,
  completed_at     timestamptz
);
CREATE INDEX gpu_challenges_by_worker ON gpu_challenges (worker_id, challenge_id DESC);

ALTER TABLE fraud_signals DROP CONSTRAINT fraud_signals_kind_check;
ALTER TABLE fraud_signals ADD CONSTRAINT fraud_signals_kind_check CHECK (kind IN (
  'BAD_SIGNATURE', 'REPLAYED_REPORT', 'FUTURE_DATED', 'OVER_CLAIM', 'UNLEASED_REPORT', 'BAD_RESULT_SIGNATURE',
  'DUPLICATE_GPU_UUID', 'SUBNET_CROWD', 'PROVIDER_FLEET', 'TELEMETRY_ANOMALY', 'ADMIN_QUARANTINE', 'CHALLENGE_FAILED'));
