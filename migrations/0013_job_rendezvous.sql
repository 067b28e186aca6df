-- A job spread over several workers starts its collective communicator (NCCL) from one id that
-- its node-rank-0 worker creates: the scheduler stores it here, once per attempt (the first offer
-- wins), and forwards it to the attempt's other workers, again after they reconnect.
CREATE TABLE job_rendezvous (
  job_id      bigint NOT NULL REFERENCES jobs,
  attempt     int NOT NULL,
  unique_id   bytea NOT NULL CHECK (length(unique_id) BETWEEN 1 AND 256),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt)
);
