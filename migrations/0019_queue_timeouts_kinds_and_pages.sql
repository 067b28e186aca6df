-- A job that has never started is cancelled at its queue deadline (submit time plus the spec's
-- queue timeout or the network's default), so a job no worker can run does not hold escrow
-- forever. NULL: jobs queued before queue timeouts, which keep waiting as before.
ALTER TABLE jobs ADD COLUMN queue_deadline timestamptz;
CREATE INDEX jobs_queue_deadline ON jobs (queue_deadline) WHERE state = 'QUEUED' AND attempt = 0;

-- The job kinds a worker's agent runs, as its latest hello said; NULL: not said (every kind).
ALTER TABLE workers ADD COLUMN job_kinds text[];

-- API keys are listed newest first in pages; a sequence gives each a stable position.
ALTER TABLE api_keys ADD COLUMN seq bigserial;
CREATE UNIQUE INDEX api_keys_by_seq ON api_keys (seq);
