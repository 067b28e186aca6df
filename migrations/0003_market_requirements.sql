-- Two-sided matching (issue 3): worker reputation and the provider's policy on jobs. A job's own
-- requirements travel in jobs.spec (the serialized JobSpec); nothing queries them in SQL.
ALTER TABLE workers
  ADD COLUMN reputation int NOT NULL DEFAULT 500 CHECK (reputation BETWEEN 0 AND 1000),
  ADD COLUMN policy bytea NOT NULL DEFAULT '';  -- serialized tessera.v1.ProviderPolicy
