-- Monthly movement per ledger bucket and transfer kind, kept in the same statement that posts the
-- transfers: a statement for a month reads a handful of rows whatever the number of transfers.
CREATE TABLE ledger_months (
  ledger_account_id  bigint NOT NULL REFERENCES ledger_accounts,
  month              date NOT NULL CHECK (extract(day FROM month) = 1),  -- UTC
  kind               text NOT NULL,
  debit_utok         bigint NOT NULL DEFAULT 0 CHECK (debit_utok >= 0),
  credit_utok        bigint NOT NULL DEFAULT 0 CHECK (credit_utok >= 0),
  transfers          bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (ledger_account_id, month, kind)
);
INSERT INTO ledger_months (ledger_account_id, month, kind, debit_utok, credit_utok, transfers)
  SELECT id, month, kind, sum(debit), sum(credit), count(*) FROM (
    SELECT debit_ledger_id AS id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, kind,
           amount_utok AS debit, 0 AS credit FROM transfers
    UNION ALL
    SELECT credit_ledger_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date, kind, 0, amount_utok FROM transfers) m
  GROUP BY id, month, kind;
