-- Checkpoints (issue 18): each save of a container job's /job/checkpoints. Its bytes are a
-- CHECKPOINT artifact of the job's account; a requeued attempt starts from the newest (the highest
-- attempt's last save). A job keeps its two newest saves; older ones' artifacts are deleted in the
-- transaction that records a new one (their bytes go to the blob collector).
CREATE TABLE job_checkpoints (
  checkpoint_id  bigserial PRIMARY KEY,
  job_id         bigint NOT NULL REFERENCES jobs,
  attempt        int NOT NULL CHECK (attempt >= 1),
  digest         text NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  size_bytes     bigint NOT NULL CHECK (size_bytes >= 0),
  created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_checkpoints_by_job ON job_checkpoints (job_id, checkpoint_id DESC);
