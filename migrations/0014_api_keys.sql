-- Authentication: API keys (stored as the SHA-256 of their secret, never the secret) with a role
-- and, for customers and providers, the account they act for; and an audit log of the operator's
-- security actions (key issued, key revoked), written in the same transaction as the change.

CREATE TABLE api_keys (
  key_id         text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{16}$'),
  secret_sha256  bytea NOT NULL CHECK (length(secret_sha256) = 32),
  role           text NOT NULL CHECK (role IN ('customer', 'provider', 'admin')),
  account_id     bigint REFERENCES accounts,
  label          text NOT NULL DEFAULT '' CHECK (length(label) <= 128),
  created_at     timestamptz NOT NULL DEFAULT now(),
  -- NULL: issued by the server itself (the bootstrap admin key).
  created_by     text REFERENCES api_keys,
  revoked_at     timestamptz,
  revoked_by     text REFERENCES api_keys,
  CONSTRAINT admin_keys_have_no_account CHECK ((role = 'admin') = (account_id IS NULL))
);
CREATE INDEX api_keys_by_account ON api_keys (account_id, created_at);

-- A key acts for an account of its own kind: a customer key for a customer, a provider key for a
-- provider. Enforced here as well as in the code, since a wrong pairing would hand out money.
CREATE FUNCTION api_key_account_kind_matches() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  account_kind text;
BEGIN
  IF NEW.account_id IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT kind INTO account_kind FROM accounts WHERE account_id = NEW.account_id;
  IF account_kind IS DISTINCT FROM NEW.role THEN
    RAISE EXCEPTION 'a % key cannot act for a % account', NEW.role, account_kind;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER api_keys_account_kind BEFORE INSERT OR UPDATE OF role, account_id ON api_keys
  FOR EACH ROW EXECUTE FUNCTION api_key_account_kind_matches();

CREATE TABLE audit_log (
  audit_id      bigserial PRIMARY KEY,
  at            timestamptz NOT NULL DEFAULT now(),
  -- The API key that acted; NULL: the server itself.
  actor_key_id  text REFERENCES api_keys,
  action        text NOT NULL,
  subject       text NOT NULL,
  detail        text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_by_subject ON audit_log (subject, audit_id);
