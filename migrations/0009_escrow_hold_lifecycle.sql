-- A job's escrow hold is a two-phase (pending) transfer in the manner of TigerBeetle. HOLD at
-- submit makes it PENDING (ExtendJob adds to it while it is pending); CHARGE and FEE draw it down;
-- it closes exactly once: RELEASED (the job was charged; the unspent rest returns) or VOIDED
-- (nothing was charged; all of it returns). A closed hold never changes again and nothing more is
-- posted against it: the database refuses both, whatever the code does.
ALTER TABLE jobs ADD COLUMN hold_state text NOT NULL DEFAULT 'PENDING'
  CHECK (hold_state IN ('PENDING', 'RELEASED', 'VOIDED'));
UPDATE jobs SET hold_state = CASE WHEN charged_utok = 0 THEN 'VOIDED' ELSE 'RELEASED' END WHERE escrow_released;
DROP INDEX jobs_to_release;
ALTER TABLE jobs DROP COLUMN escrow_released;
CREATE INDEX jobs_to_release ON jobs (job_id)
  WHERE hold_state = 'PENDING' AND state IN ('SUCCEEDED', 'FAILED', 'CANCELLED');
ALTER TABLE jobs
  ADD CONSTRAINT closed_hold_returns_the_rest CHECK (hold_state = 'PENDING' OR charged_utok + released_utok = hold_utok),
  ADD CONSTRAINT voided_hold_was_never_charged CHECK (hold_state <> 'VOIDED' OR charged_utok = 0);

CREATE FUNCTION holds_close_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the escrow hold of job % is already %: it cannot be posted, voided or changed again',
    OLD.job_id, lower(OLD.hold_state) USING ERRCODE = 'check_violation';
END $$;
CREATE TRIGGER jobs_closed_hold_is_final BEFORE UPDATE OF hold_state, hold_utok, charged_utok, released_utok ON jobs
  FOR EACH ROW WHEN (OLD.hold_state <> 'PENDING'
    AND (NEW.hold_state, NEW.hold_utok, NEW.charged_utok, NEW.released_utok)
        IS DISTINCT FROM (OLD.hold_state, OLD.hold_utok, OLD.charged_utok, OLD.released_utok))
  EXECUTE FUNCTION holds_close_once();

CREATE OR REPLACE FUNCTION transfers_respect_released_holds() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  closed text;
BEGIN
  IF NEW.job_id IS NOT NULL AND NEW.kind IN ('HOLD', 'CHARGE', 'FEE', 'RELEASE') THEN
    SELECT lower(hold_state) INTO closed FROM jobs WHERE job_id = NEW.job_id AND hold_state <> 'PENDING';
    IF FOUND THEN
      RAISE EXCEPTION 'the escrow hold of job % is already %: no % may be posted against it', NEW.job_id, closed, NEW.kind
        USING ERRCODE = 'check_violation';
    END IF;
  END IF;
  RETURN NEW;
END $$;

-- ExtendJob: more run time for a job that has not ended, paid for by a further HOLD. Keyed by the
-- customer's request_id, so a retried extension is applied once.
CREATE TABLE job_extensions (
  job_id                  bigint NOT NULL REFERENCES jobs,
  request_id              text NOT NULL,
  additional_duration_ms  bigint NOT NULL CHECK (additional_duration_ms > 0),
  hold_added_utok         bigint NOT NULL CHECK (hold_added_utok >= 0),
  max_duration_ms_after   bigint NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, request_id)
);

-- The max_duration_ms at which the customer was last warned that the job's escrow runs low (0:
-- never), so each limit warns once and an extension re-arms the warning.
ALTER TABLE jobs ADD COLUMN escrow_warned_at_max_ms bigint NOT NULL DEFAULT 0;

-- Job events that are not state changes: 'ESCROW_LOW' warnings (with the run time left on the
-- attempt) and 'EXTENDED' top-ups.
ALTER TABLE job_events
  ADD COLUMN kind text NOT NULL DEFAULT 'STATE' CHECK (kind IN ('STATE', 'ESCROW_LOW', 'EXTENDED')),
  ADD COLUMN remaining_ms bigint;
