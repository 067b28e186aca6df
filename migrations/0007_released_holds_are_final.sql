-- A job's escrow hold is a pending transfer in the manner of TigerBeetle: drawn down by CHARGE and
-- FEE, closed once by RELEASE. Once released, nothing more is posted against it: a second release
-- or a charge after the release is refused by the database itself, whatever the code does.
CREATE FUNCTION transfers_respect_released_holds() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.job_id IS NOT NULL AND NEW.kind IN ('CHARGE', 'FEE', 'RELEASE')
     AND EXISTS (SELECT 1 FROM jobs WHERE job_id = NEW.job_id AND escrow_released) THEN
    RAISE EXCEPTION 'the escrow hold of job % is already released: no % may be posted against it', NEW.job_id, NEW.kind
      USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER transfers_after_release BEFORE INSERT ON transfers
  FOR EACH ROW EXECUTE FUNCTION transfers_respect_released_holds();
