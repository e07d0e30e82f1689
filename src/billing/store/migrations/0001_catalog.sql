-- Catalog, customers and idempotent requests.
--
-- Money: amounts inside price models are exact decimal strings in minor units (jsonb, never a
-- JSON number, so no float ever sees them); coupon amounts are bigint minor units.

-- One row holding the catalog version. Every catalog write bumps it in the same transaction
-- (statement triggers below), so a reader that sees version N in a snapshot sees exactly the
-- catalog of version N. NOTIFY is only a hint: the rating service also polls this row.
CREATE TABLE catalog_state (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version bigint NOT NULL
);
INSERT INTO catalog_state (singleton, version) VALUES (true, 1);

CREATE FUNCTION bump_catalog_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    UPDATE catalog_state SET version = version + 1;
    PERFORM pg_notify('catalog_changed', '');
    RETURN NULL;
END
$$;

CREATE TABLE products (
    id text PRIMARY KEY,
    display_name text NOT NULL CHECK (display_name <> ''),
    description text NOT NULL DEFAULT '',
    tax_code text NOT NULL DEFAULT '',
    archived boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE meters (
    id text PRIMARY KEY,
    event_name text NOT NULL UNIQUE,
    display_name text NOT NULL,
    aggregation text NOT NULL
        CHECK (aggregation IN ('sum', 'count', 'max', 'unique_count', 'latest')),
    value_property text NOT NULL DEFAULT '',
    dimensions text[] NOT NULL DEFAULT '{}',
    archived boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (aggregation = 'count' OR value_property <> '')
);

CREATE TABLE prices (
    id text PRIMARY KEY,
    product_id text NOT NULL REFERENCES products (id),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    model jsonb NOT NULL,
    recurring_interval text CHECK (recurring_interval IN ('day', 'week', 'month', 'year')),
    recurring_count integer CHECK (recurring_count > 0),
    meter_id text REFERENCES meters (id),
    filters jsonb NOT NULL DEFAULT '[]',
    lookup_key text UNIQUE,
    nickname text NOT NULL DEFAULT '',
    version integer NOT NULL CHECK (version > 0),
    -- UNIQUE: a price has at most one successor, so versions form a chain, never a fork.
    supersedes text UNIQUE REFERENCES prices (id),
    archived boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((recurring_interval IS NULL) = (recurring_count IS NULL)),
    CHECK ((version = 1) = (supersedes IS NULL))
);

-- Prices are immutable (DESIGN.md §4): only presentation fields may change. Enforced here, not
-- only in code, because a grandfathered subscription bills from this row for years.
CREATE FUNCTION forbid_price_edits() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'price % cannot be deleted; archive it', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.product_id, NEW.currency, NEW.model, NEW.recurring_interval, NEW.recurring_count,
        NEW.meter_id, NEW.filters, NEW.version, NEW.supersedes, NEW.created_at)
       IS DISTINCT FROM
       (OLD.product_id, OLD.currency, OLD.model, OLD.recurring_interval, OLD.recurring_count,
        OLD.meter_id, OLD.filters, OLD.version, OLD.supersedes, OLD.created_at) THEN
        RAISE EXCEPTION 'price % is immutable; create a new version instead', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER prices_immutable BEFORE UPDATE OR DELETE ON prices
    FOR EACH ROW EXECUTE FUNCTION forbid_price_edits();

CREATE TABLE addons (
    id text PRIMARY KEY,
    display_name text NOT NULL,
    price_id text NOT NULL REFERENCES prices (id),
    archived boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE plans (
    id text PRIMARY KEY,
    display_name text NOT NULL,
    description text NOT NULL DEFAULT '',
    seat_price_id text REFERENCES prices (id),
    -- Element references are checked by the use case; prices and add-ons are never deleted.
    usage_price_ids text[] NOT NULL DEFAULT '{}',
    included_addon_ids text[] NOT NULL DEFAULT '{}',
    lookup_key text UNIQUE,
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    archived boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE coupons (
    id text PRIMARY KEY,
    code text NOT NULL UNIQUE,
    display_name text NOT NULL,
    percent_off numeric CHECK (percent_off > 0 AND percent_off <= 100),
    amount_off bigint CHECK (amount_off > 0),
    currency text,
    duration text NOT NULL CHECK (duration IN ('once', 'repeating', 'forever')),
    duration_in_months integer,
    applies_to_products text[] NOT NULL DEFAULT '{}',
    max_redemptions integer CHECK (max_redemptions > 0),
    redeem_by timestamptz,
    times_redeemed integer NOT NULL DEFAULT 0 CHECK (times_redeemed >= 0),
    archived boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((percent_off IS NULL) <> (amount_off IS NULL)),
    CHECK ((amount_off IS NULL) = (currency IS NULL)),
    CHECK ((duration = 'repeating') = (duration_in_months IS NOT NULL))
);

CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE ON products
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER meters_changed AFTER INSERT OR UPDATE OR DELETE ON meters
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE ON prices
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER addons_changed AFTER INSERT OR UPDATE OR DELETE ON addons
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER plans_changed AFTER INSERT OR UPDATE OR DELETE ON plans
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();
CREATE TRIGGER coupons_changed AFTER INSERT OR UPDATE OR DELETE ON coupons
    FOR EACH STATEMENT EXECUTE FUNCTION bump_catalog_version();

CREATE TABLE customers (
    id text PRIMARY KEY,
    display_name text NOT NULL,
    email text NOT NULL DEFAULT '',
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    time_zone text NOT NULL DEFAULT 'UTC',
    billing_address jsonb NOT NULL DEFAULT '{}',
    tax_ids jsonb NOT NULL DEFAULT '[]',
    crm_account_id text UNIQUE,
    accounting_id text UNIQUE,
    metadata jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The first answer to each mutating request, so a retry gets it back instead of a second write.
-- The row is written in the mutation's own transaction: both commit or neither does.
CREATE TABLE idempotency_keys (
    request_id text PRIMARY KEY CHECK (length(request_id) BETWEEN 1 AND 128),
    method text NOT NULL,
    fingerprint bytea NOT NULL,
    response bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
