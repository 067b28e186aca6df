-- Provider payouts: a request moves earnings to `payout_pending`; an admin approves (pending →
-- treasury, the off-ramp) or rejects (pending → earnings). Each step is a ledger transfer.
ALTER TABLE ledger_accounts DROP CONSTRAINT ledger_accounts_bucket_check;
ALTER TABLE ledger_accounts ADD CONSTRAINT ledger_accounts_bucket_check
  CHECK (bucket IN ('available', 'escrow', 'earnings', 'payout_pending', 'fees', 'main'));
INSERT INTO ledger_accounts (account_id, bucket) SELECT account_id, 'payout_pending' FROM accounts WHERE kind = 'provider';

CREATE TABLE payouts (
  payout_id        bigserial PRIMARY KEY,
  account_id       bigint NOT NULL REFERENCES accounts,
  amount_utok      bigint NOT NULL CHECK (amount_utok > 0),
  idempotency_key  text NOT NULL,
  state            text NOT NULL CHECK (state IN ('REQUESTED', 'APPROVED', 'REJECTED')),
  reason           text NOT NULL DEFAULT '',
  requested_at     timestamptz NOT NULL DEFAULT now(),
  decided_at       timestamptz,
  UNIQUE (account_id, idempotency_key),
  CHECK ((state = 'REQUESTED') = (decided_at IS NULL))
);
CREATE INDEX payouts_by_account ON payouts (account_id, payout_id DESC);
CREATE INDEX payouts_requested ON payouts (payout_id) WHERE state = 'REQUESTED';
