-- Usage events, partitioned by month of occurrence, with a dedupe table.
--
-- Dedupe scope: an idempotency key is remembered for 45 days after its event was accepted
-- (usage_keys, pruned by prune_usage_keys). Within that window the PRIMARY KEY of usage_keys
-- makes a second event with the same key impossible, whatever the code does. 45 days covers
-- the 35-day late-event horizon plus the time a sender may keep retrying.

CREATE TABLE usage_keys (
    idempotency_key text PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    -- md5 of the canonical payload: the same key with another payload is refused.
    fingerprint uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    accepted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX usage_keys_accepted_at ON usage_keys (accepted_at);
-- A queue-like table: keep its statistics fresh (DESIGN.md §6 trap).
ALTER TABLE usage_keys SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);

CREATE SEQUENCE usage_received_seq;

CREATE TABLE usage_events (
    occurred_at timestamptz NOT NULL,
    idempotency_key text NOT NULL,
    customer_id text NOT NULL,
    meter_id text NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}',
    value numeric,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- Order of receipt: breaks ties between events of one instant (a `latest` meter's answer).
    received_seq bigint NOT NULL DEFAULT nextval('usage_received_seq'),
    cancelled_at timestamptz,
    PRIMARY KEY (idempotency_key, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- The invoicer's and GetUsageSummary's access path: one customer, one meter, one period, events
-- that still count. With the value included, an unfiltered sum, count or max is an index-only
-- scan; a property filter reads the rows the index found.
CREATE INDEX usage_events_customer_meter_time ON usage_events (customer_id, meter_id, occurred_at)
    INCLUDE (value) WHERE cancelled_at IS NULL;

-- Monthly partitions, created ahead of time by ensure_usage_partitions (at migration, and by
-- the rating service at start and every hour).
CREATE FUNCTION ensure_usage_partitions(from_time timestamptz, to_time timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    month_start timestamptz := date_trunc('month', from_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    created integer := 0;
    name text;
BEGIN
    WHILE month_start < to_time LOOP
        name := 'usage_events_' || to_char(month_start AT TIME ZONE 'UTC', 'YYYY_MM');
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF usage_events FOR VALUES FROM (%L) TO (%L)',
                name, month_start, month_start + interval '1 month');
            created := created + 1;
        END IF;
        month_start := month_start + interval '1 month';
    END LOOP;
    RETURN created;
END
$$;

SELECT ensure_usage_partitions(now() - interval '3 months', now() + interval '3 months');

CREATE FUNCTION prune_usage_keys(older_than interval DEFAULT interval '45 days') RETURNS bigint
LANGUAGE sql AS $$
    WITH gone AS (DELETE FROM usage_keys WHERE accepted_at < now() - older_than RETURNING 1)
    SELECT count(*) FROM gone
$$;
