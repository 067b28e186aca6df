-- Two-sided matching (issue 3): worker reputation and the provider's policy on jobs. A job's own
-- requirements travel in jobs.spec (the serialized JobSpec); nothing queries them in SQL.
ALTER TABLE workers
  ADD COLUMN reputation int NOT NULL DEFAULT 500 CHECK (reputation BETWEEN 0 AND 1000),
  ADD COLUMN policy bytea NOT NULL DEFAULT '';  -- serialized tessera.v1.ProviderPolicy

-- A spread job holds GPUs on several workers: one lease (assignment) per worker, numbered by
-- node_rank, and each worker numbers its own usage reports.
ALTER TABLE usage_reports DROP CONSTRAINT usage_reports_job_id_attempt_fkey;
ALTER TABLE usage_reports DROP CONSTRAINT usage_reports_pkey;
ALTER TABLE assignments DROP CONSTRAINT assignments_pkey;
ALTER TABLE assignments ADD PRIMARY KEY (job_id, attempt, worker_id);
ALTER TABLE assignments ADD COLUMN node_rank int NOT NULL DEFAULT 0 CHECK (node_rank >= 0);
ALTER TABLE usage_reports ADD PRIMARY KEY (job_id, attempt, worker_id, seq);
-- No foreign key to assignments: the only writer (the scheduler's usage ingest) inserts a report
-- only by joining its live lease under a share lock in the same statement, so a per-row recheck
-- would only cost (it was a third of ingest's time at 50,000 reports/s).
DROP INDEX usage_reports_unsettled;
CREATE INDEX usage_reports_unsettled ON usage_reports (job_id, attempt, worker_id, seq) WHERE NOT settled;
