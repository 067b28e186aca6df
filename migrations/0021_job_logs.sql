-- Job logs (issue 18): each attempt's stdout and stderr lines as its worker appended them (a spread
-- job has one log per node of each attempt, by node_rank). Lines are stored in chunks (one per
-- append, a serialized tessera.v1.ReadJobLogResponse), numbered per attempt and node from 0. A job keeps at most the server's log limit in bytes; past it its oldest chunks
-- are deleted and counted as cut.

-- One row per attempt and node that wrote output: the next line number it expects (an append below it is a
-- resend and is skipped), what it holds, what was cut, and whether its worker sent its last line.
CREATE TABLE job_logs (
  job_id        bigint NOT NULL REFERENCES jobs,
  attempt       int NOT NULL CHECK (attempt >= 1),
  node          int NOT NULL CHECK (node >= 0),
  next_seq      bigint NOT NULL DEFAULT 0 CHECK (next_seq >= 0),
  first_kept    bigint NOT NULL DEFAULT 0 CHECK (first_kept >= 0),
  stored_bytes  bigint NOT NULL DEFAULT 0 CHECK (stored_bytes >= 0),
  closed        boolean NOT NULL DEFAULT false,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt, node)
);

CREATE TABLE job_log_chunks (
  job_id      bigint NOT NULL,
  attempt     int NOT NULL,
  node        int NOT NULL,
  first_seq   bigint NOT NULL CHECK (first_seq >= 0),
  line_count  int NOT NULL CHECK (line_count > 0),
  bytes       int NOT NULL CHECK (bytes >= 0),  -- the size of `lines`: what counts against the job's limit
  lines       bytea NOT NULL,
  PRIMARY KEY (job_id, attempt, node, first_seq),
  FOREIGN KEY (job_id, attempt, node) REFERENCES job_logs
);
