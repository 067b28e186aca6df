-- Tessera schema, version 1: accounts and the double-entry ledger, workers and their GPUs, jobs with
-- their audit events, assignments (leases) and metered usage. Money is bigint micro-tokens (µT).

CREATE TABLE accounts (
  account_id  bigserial PRIMARY KEY,
  name        text NOT NULL UNIQUE,
  kind        text NOT NULL CHECK (kind IN ('customer', 'provider', 'platform', 'treasury')),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- One row per balance bucket: customer available/escrow, provider earnings, platform fees,
-- treasury main. Each balance equals credits minus debits of its transfers; only the treasury may
-- go negative (it mints deposits), so the sum over all buckets is zero.
CREATE TABLE ledger_accounts (
  ledger_account_id bigserial PRIMARY KEY,
  account_id        bigint NOT NULL REFERENCES accounts,
  bucket            text NOT NULL CHECK (bucket IN ('available', 'escrow', 'earnings', 'fees', 'main')),
  balance_utok      bigint NOT NULL DEFAULT 0,
  UNIQUE (account_id, bucket),
  CONSTRAINT balance_not_negative CHECK (bucket = 'main' OR balance_utok >= 0)
);

INSERT INTO accounts (name, kind) VALUES ('platform', 'platform'), ('treasury', 'treasury');
INSERT INTO ledger_accounts (account_id, bucket)
  SELECT account_id, CASE kind WHEN 'platform' THEN 'fees' ELSE 'main' END FROM accounts;

-- Append-only: a correction is a new transfer.
CREATE TABLE transfers (
  transfer_id      bigserial PRIMARY KEY,
  idempotency_key  text NOT NULL UNIQUE,
  kind             text NOT NULL CHECK (kind IN ('DEPOSIT', 'HOLD', 'CHARGE', 'FEE', 'RELEASE', 'PAYOUT', 'REFUND')),
  debit_ledger_id  bigint NOT NULL REFERENCES ledger_accounts,
  credit_ledger_id bigint NOT NULL REFERENCES ledger_accounts,
  amount_utok      bigint NOT NULL CHECK (amount_utok > 0),
  job_id           bigint,
  created_at       timestamptz NOT NULL DEFAULT now(),
  CHECK (debit_ledger_id <> credit_ledger_id)
);
CREATE INDEX transfers_by_debit ON transfers (debit_ledger_id, transfer_id);
CREATE INDEX transfers_by_credit ON transfers (credit_ledger_id, transfer_id);
CREATE INDEX transfers_by_job ON transfers (job_id) WHERE job_id IS NOT NULL;

CREATE FUNCTION transfers_are_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'transfers are append-only: % is not allowed', TG_OP;
END $$;
CREATE TRIGGER transfers_append_only BEFORE UPDATE OR DELETE ON transfers
  FOR EACH ROW EXECUTE FUNCTION transfers_are_append_only();

CREATE TABLE workers (
  worker_id              bigserial PRIMARY KEY,
  provider_account_id    bigint NOT NULL REFERENCES accounts,
  name                   text NOT NULL,
  region                 text NOT NULL,
  ask_utok_per_gpu_hour  bigint NOT NULL CHECK (ask_utok_per_gpu_hour > 0),
  state                  text NOT NULL CHECK (state IN ('PENDING_VERIFICATION', 'ACTIVE', 'DRAINING', 'OFFLINE', 'QUARANTINED')),
  last_seen_at           timestamptz,
  created_at             timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gpus (
  gpu_id              bigserial PRIMARY KEY,
  worker_id           bigint NOT NULL REFERENCES workers,
  gpu_index           int NOT NULL,
  model               text NOT NULL,
  memory_mib          bigint NOT NULL,
  compute_capability  text NOT NULL,
  uuid                text NOT NULL UNIQUE,
  UNIQUE (worker_id, gpu_index)
);

CREATE TABLE jobs (
  job_id                 bigserial PRIMARY KEY,
  account_id             bigint NOT NULL REFERENCES accounts,
  request_id             text NOT NULL,
  spec                   bytea NOT NULL,            -- serialized tessera.v1.JobSpec (deterministic)
  kind                   text NOT NULL,
  gpu_count              int NOT NULL CHECK (gpu_count BETWEEN 1 AND 64),
  gpu_models             text[] NOT NULL,
  bid_utok_per_gpu_hour  bigint NOT NULL CHECK (bid_utok_per_gpu_hour > 0),
  max_duration_ms        bigint NOT NULL CHECK (max_duration_ms > 0),
  priority_class         text NOT NULL CHECK (priority_class IN ('ON_DEMAND', 'SPOT')),
  max_attempts           int NOT NULL CHECK (max_attempts >= 1),
  fee_bps                int NOT NULL CHECK (fee_bps BETWEEN 0 AND 10000),
  hold_utok              bigint NOT NULL CHECK (hold_utok >= 0),
  state                  text NOT NULL CHECK (state IN ('QUEUED', 'ASSIGNED', 'RUNNING', 'SUCCEEDED', 'FAILED', 'CANCELLED')),
  attempt                int NOT NULL DEFAULT 0,
  worker_id              bigint REFERENCES workers,
  price_utok_per_gpu_hour bigint NOT NULL DEFAULT 0,
  gpu_ms_total           bigint NOT NULL DEFAULT 0,
  charged_utok           bigint NOT NULL DEFAULT 0,
  progress_ppm           int NOT NULL DEFAULT 0,
  last_loss              double precision,          -- training loss, never money
  wait_reason            text NOT NULL DEFAULT '',
  result                 bytea,                     -- serialized tessera.v1.JobResult
  escrow_released        boolean NOT NULL DEFAULT false,
  released_utok          bigint NOT NULL DEFAULT 0,
  created_at             timestamptz NOT NULL DEFAULT now(),
  updated_at             timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, request_id),
  CONSTRAINT charged_within_hold CHECK (charged_utok + released_utok <= hold_utok)
);
CREATE INDEX jobs_queued ON jobs (job_id) WHERE state = 'QUEUED';
CREATE INDEX jobs_by_account ON jobs (account_id, job_id DESC);
CREATE INDEX jobs_to_release ON jobs (job_id)
  WHERE NOT escrow_released AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED');

-- The audit trail: one row per job state change, written in the same transaction.
CREATE TABLE job_events (
  event_id    bigserial PRIMARY KEY,
  job_id      bigint NOT NULL REFERENCES jobs,
  state       text NOT NULL,
  attempt     int NOT NULL,
  worker_id   bigint,
  message     text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_events_by_job ON job_events (job_id, event_id);

-- One lease of a job on a worker. LIVE while the worker may run it and report usage.
CREATE TABLE assignments (
  job_id                  bigint NOT NULL REFERENCES jobs,
  attempt                 int NOT NULL,
  worker_id               bigint NOT NULL REFERENCES workers,
  gpu_indexes             int[] NOT NULL,
  price_utok_per_gpu_hour bigint NOT NULL CHECK (price_utok_per_gpu_hour > 0),
  state                   text NOT NULL CHECK (state IN ('LIVE', 'ENDED')),
  end_reason              text NOT NULL DEFAULT '',
  gpu_ms_total            bigint NOT NULL DEFAULT 0,
  charged_utok            bigint NOT NULL DEFAULT 0,
  fee_utok                bigint NOT NULL DEFAULT 0,
  usage_reports           bigint NOT NULL DEFAULT 0,
  created_at              timestamptz NOT NULL DEFAULT now(),
  ended_at                timestamptz,
  PRIMARY KEY (job_id, attempt)
);
CREATE INDEX assignments_live_by_worker ON assignments (worker_id) WHERE state = 'LIVE';

-- Metered usage, stored once per (job, attempt, seq); settlement turns it into transfers.
CREATE TABLE usage_reports (
  job_id          bigint NOT NULL,
  attempt         int NOT NULL,
  seq             bigint NOT NULL CHECK (seq >= 1),
  worker_id       bigint NOT NULL REFERENCES workers,
  gpu_ms          bigint NOT NULL CHECK (gpu_ms >= 0),
  measured_at_ms  bigint NOT NULL,
  received_at     timestamptz NOT NULL DEFAULT now(),
  settled         boolean NOT NULL DEFAULT false,
  charge_utok     bigint NOT NULL DEFAULT 0,
  fee_utok        bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (job_id, attempt, seq),
  FOREIGN KEY (job_id, attempt) REFERENCES assignments
);
CREATE INDEX usage_reports_unsettled ON usage_reports (job_id, attempt, seq) WHERE NOT settled;
