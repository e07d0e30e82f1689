-- API tokens for the rating service (issue 6). Only the SHA-256 digest of a secret is stored.
--
-- The rating service keeps every token in memory and never reads this table per call: a
-- statement trigger bumps api_tokens_state.version and sends NOTIFY api_tokens_changed, and
-- the service reloads on the hint or when its poll sees a newer version (the catalog's scheme).

CREATE TABLE api_tokens (
    id text PRIMARY KEY,
    name text NOT NULL CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    token_digest bytea NOT NULL UNIQUE CHECK (length(token_digest) = 32),
    scopes text[] NOT NULL CHECK (cardinality(scopes) > 0),
    -- NULL: the server's default limit.
    rate_per_second integer CHECK (rate_per_second > 0),
    burst integer CHECK (burst > 0),
    max_streams integer CHECK (max_streams > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
-- A name is unique among live tokens, so a rotated token may take its predecessor's name.
CREATE UNIQUE INDEX api_tokens_live_name ON api_tokens (name) WHERE revoked_at IS NULL;

-- A token is never edited and never deleted (it is the audit trail of who could call): the
-- only change is revoking it, once.
CREATE FUNCTION api_tokens_only_revoke() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'api tokens are never deleted; revoke them' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.revoked_at IS NOT NULL
        OR (to_jsonb(NEW) - 'revoked_at') IS DISTINCT FROM (to_jsonb(OLD) - 'revoked_at') THEN
        RAISE EXCEPTION 'an api token can only be revoked, once' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER api_tokens_only_revoke BEFORE UPDATE OR DELETE ON api_tokens
    FOR EACH ROW EXECUTE FUNCTION api_tokens_only_revoke();

CREATE TABLE api_tokens_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);
INSERT INTO api_tokens_state (singleton, version) VALUES (true, 1);

CREATE FUNCTION api_tokens_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE api_tokens_state SET version = version + 1;
    PERFORM pg_notify('api_tokens_changed', '');
    RETURN NULL;
END $$;
CREATE TRIGGER api_tokens_changed AFTER INSERT OR UPDATE ON api_tokens
    FOR EACH STATEMENT EXECUTE FUNCTION api_tokens_changed();
