-- Artifacts (issue 18). The bytes live in the blob store (services/artifacts), named by their
-- SHA-256; PostgreSQL holds which blobs exist and which account holds which of them.

-- One row per stored blob. A blob no artifact refers to is collected in two passes: the first
-- marks it doomed, the second (later) deletes the row and the file together, under the digest's
-- advisory lock that an upload of the same bytes also takes; such an upload clears the mark and
-- puts its own file in place, so it never loses its bytes to the collector.
CREATE TABLE blobs (
  digest      text PRIMARY KEY CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
  size_bytes  bigint NOT NULL CHECK (size_bytes >= 0),
  created_at  timestamptz NOT NULL DEFAULT now(),
  doomed_at   timestamptz
);

-- An account's artifact: its claim on a blob, once per account and digest (uploading the same bytes
-- again returns the same artifact). An account's storage is the sum of its artifacts' sizes.
CREATE TABLE artifacts (
  artifact_id  bigserial PRIMARY KEY,
  account_id   bigint NOT NULL REFERENCES accounts,
  digest       text NOT NULL REFERENCES blobs,
  size_bytes   bigint NOT NULL CHECK (size_bytes >= 0),
  name         text NOT NULL DEFAULT '' CHECK (length(name) <= 256),
  kind         text NOT NULL CHECK (kind IN ('FILE', 'BUNDLE', 'OUTPUTS', 'CHECKPOINT')),
  job_id       bigint REFERENCES jobs,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, digest)
);
CREATE INDEX artifacts_by_account ON artifacts (account_id, artifact_id);
CREATE INDEX artifacts_by_digest ON artifacts (digest);
