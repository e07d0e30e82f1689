-- Subscriptions, the invoicer's period queue, invoices, numbering, credit balances, tax rates,
-- test clocks and the transactional outbox (issue 5; docs/architecture.md "Invoicer").
--
-- Money: billed amounts are bigint minor units; quantities, unit amounts and rates are numeric
-- (never float). Instants are timestamptz in UTC; periods are half-open [start, end).

-- Test clocks: simulated time for the customers attached to one (DESIGN.md §3). "Now" for such a
-- customer is its clock's frozen_time; for everyone else it is the real now().
CREATE TABLE test_clocks (
    id text PRIMARY KEY,
    display_name text NOT NULL DEFAULT '',
    frozen_time timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- A customer is attached to a clock at creation and stays on it: moving a customer between
-- clocks (or to real time) would make its periods jump.
ALTER TABLE customers ADD COLUMN test_clock_id text REFERENCES test_clocks (id);
CREATE INDEX customers_test_clock ON customers (test_clock_id) WHERE test_clock_id IS NOT NULL;

-- One row per subscription. The relational columns are what SQL must see (who, status, the
-- queue); `state` is the domain's Subscription (items, coupons, coverages, cycle...) as a JSON
-- document written by billing.store.codec. Every writer bumps `version`; the invoicer commits a
-- close only if the version it rated is still the current one (optimistic concurrency with the
-- API), and only if its lease is still its own and unexpired (fencing).
CREATE TABLE subscriptions (
    id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id),
    -- Copied from the customer (it never changes), so a claim needs no join.
    test_clock_id text REFERENCES test_clocks (id),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    issuing_entity text NOT NULL DEFAULT 'default',
    status text NOT NULL CHECK (status IN ('trialing', 'active', 'canceled', 'ended')),
    state jsonb NOT NULL,
    version bigint NOT NULL DEFAULT 1 CHECK (version > 0),
    -- The queue, in the customer's time (its test clock's when it has one):
    -- the next boundary the invoicer must close (NULL: nothing left to close) ...
    next_boundary_at timestamptz,
    -- ... and the earliest end of a draft invoice's grace window (NULL: no draft).
    finalize_due_at timestamptz,
    due_at timestamptz GENERATED ALWAYS AS (LEAST(next_boundary_at, finalize_due_at)) STORED,
    -- The lease of the worker working on it (real time).
    lease_token uuid,
    lease_owner text,
    lease_expires_at timestamptz,
    -- Failures: consecutive failed attempts, when to try again (real time), and why it is parked.
    attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz,
    last_error text,
    parked_reason text,
    parked_at timestamptz,
    -- W3C traceparent of the request that last changed it: the invoicer's job continues that trace.
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((parked_reason IS NULL) = (parked_at IS NULL))
);
CREATE INDEX subscriptions_customer ON subscriptions (customer_id, id);
-- The claim's access paths: real-time subscriptions in due order, and those on test clocks.
CREATE INDEX subscriptions_due ON subscriptions (due_at)
    WHERE parked_reason IS NULL AND test_clock_id IS NULL AND due_at IS NOT NULL;
CREATE INDEX subscriptions_clock_due ON subscriptions (test_clock_id, due_at)
    WHERE parked_reason IS NULL AND test_clock_id IS NOT NULL AND due_at IS NOT NULL;
CREATE INDEX subscriptions_parked ON subscriptions (parked_at) WHERE parked_reason IS NOT NULL;
-- Queue-like: rows swing between due and not due all day. Keep statistics fresh, or an ordered
-- claim plans badly (DESIGN.md §6: 107 ms before ANALYZE, 0.8 ms after).
ALTER TABLE subscriptions SET (
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 100,
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 100
);

-- A hint only (DESIGN.md §6): workers also poll. Identical notifications in one transaction are
-- delivered once, which is all a wake-up needs. Only a row that is claimable right now wakes
-- anyone: a close that moves the next boundary into the future (nearly all of them) stays silent,
-- so a busy invoicer is not woken by its own commits.
CREATE FUNCTION notify_invoicer() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('invoicer_wakeup', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER subscriptions_wakeup AFTER INSERT OR UPDATE ON subscriptions
    FOR EACH ROW
    WHEN (NEW.parked_reason IS NULL AND NEW.lease_token IS NULL
          AND (NEW.next_attempt_at IS NULL OR NEW.next_attempt_at <= now())
          AND (NEW.test_clock_id IS NOT NULL OR NEW.due_at <= now()))
    EXECUTE FUNCTION notify_invoicer();
CREATE TRIGGER test_clocks_wakeup AFTER UPDATE OF frozen_time ON test_clocks
    FOR EACH STATEMENT EXECUTE FUNCTION notify_invoicer();

-- Proration lines created by a change with create_prorations, waiting for the next invoice.
-- `line` is the domain's InvoiceLine, written by billing.store.codec; invoice_id is set by the
-- close that bills it, in the close's transaction.
CREATE TABLE pending_proration_lines (
    id text PRIMARY KEY,
    subscription_id text NOT NULL REFERENCES subscriptions (id),
    created_for timestamptz NOT NULL,
    line jsonb NOT NULL,
    invoice_id text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pending_proration_lines_open ON pending_proration_lines (subscription_id)
    WHERE invoice_id IS NULL;

-- Coverages: the fee lines and proration debits that paid for an item over a period, which a
-- later change credits (billing-rules.md §4). `coverage` is the domain's Coverage (codec); the
-- columns beside it are what the queries select on. Ids are the domain's, deterministic.
CREATE TABLE subscription_coverages (
    subscription_id text NOT NULL REFERENCES subscriptions (id),
    id text NOT NULL,
    period_end timestamptz NOT NULL,
    credited_from timestamptz,
    coverage jsonb NOT NULL,
    PRIMARY KEY (subscription_id, id)
);
CREATE INDEX subscription_coverages_live ON subscription_coverages (subscription_id, period_end)
    WHERE credited_from IS NULL;

-- Invoices (DESIGN.md §6). Amounts in minor units of `currency`:
-- total = subtotal - discount + tax; amount_due = total - credit_applied (never below 0).
CREATE TABLE invoices (
    id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id),
    subscription_id text REFERENCES subscriptions (id),
    -- The boundary a closing invoice closes; NULL for invoices that close no period (a
    -- change invoiced at once). One closing invoice per subscription and boundary, whatever
    -- the code does: the constraint below.
    boundary timestamptz,
    kind text NOT NULL CHECK (kind IN ('closing', 'final', 'first', 'proration', 'manual')),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status text NOT NULL DEFAULT 'draft'
        CHECK (status IN ('draft', 'open', 'paid', 'void', 'uncollectible')),
    issuing_entity text NOT NULL DEFAULT 'default',
    number text,
    number_seq bigint,
    period_start timestamptz,
    period_end timestamptz,
    subtotal bigint NOT NULL DEFAULT 0,
    discount bigint NOT NULL DEFAULT 0,
    tax bigint NOT NULL DEFAULT 0,
    total bigint NOT NULL DEFAULT 0,
    credit_applied bigint NOT NULL DEFAULT 0 CHECK (credit_applied >= 0),
    amount_due bigint NOT NULL DEFAULT 0 CHECK (amount_due >= 0),
    -- In the customer's time: when the grace window ends and the draft is finalized.
    finalize_at timestamptz,
    finalized_at timestamptz,
    -- What finalization rates again: the close's inputs (billing.store.codec), kept for audit.
    rating_inputs jsonb,
    -- Status columns: the only ones an open invoice may still change.
    status_changed_at timestamptz,
    paid_at timestamptz,
    voided_at timestamptz,
    marked_uncollectible_at timestamptz,
    payment_reference text,
    test_clock_id text REFERENCES test_clocks (id),
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT invoices_subscription_boundary_key UNIQUE (subscription_id, boundary),
    CONSTRAINT invoices_number_key UNIQUE (issuing_entity, number_seq),
    CHECK (total = subtotal - discount + tax),
    CHECK ((status = 'draft') = (number IS NULL)),
    CHECK ((number IS NULL) = (number_seq IS NULL)),
    CHECK (kind NOT IN ('closing', 'final') OR boundary IS NOT NULL)
);
CREATE INDEX invoices_customer ON invoices (customer_id, created_at, id);
CREATE INDEX invoices_subscription ON invoices (subscription_id, boundary);
CREATE INDEX invoices_drafts ON invoices (subscription_id, finalize_at) WHERE status = 'draft';

CREATE TABLE invoice_lines (
    invoice_id text NOT NULL REFERENCES invoices (id),
    position integer NOT NULL CHECK (position >= 0),
    kind text NOT NULL,
    description text NOT NULL DEFAULT '',
    price_id text,
    product_id text,
    item_key text,
    quantity numeric NOT NULL DEFAULT 0,
    unit_amount numeric,
    -- The exact amount before the line's one rounding, beside the rounded one (DESIGN.md §2),
    -- as "numerator/denominator": a prorated amount is rarely a finite decimal.
    amount_unrounded text NOT NULL,
    amount bigint NOT NULL,
    discount bigint NOT NULL DEFAULT 0,
    tax bigint NOT NULL DEFAULT 0,
    tax_rate_id text,
    tax_percentage numeric,
    period_start timestamptz NOT NULL,
    period_end timestamptz NOT NULL,
    -- Exact proration factor as "numerator/denominator" (a fraction, never a float).
    proration_factor text,
    -- The whole domain line (tiers, discounts, usage window...; billing.store.codec): what a
    -- person needs to recompute it, and what a later close re-rates a usage line from.
    line jsonb NOT NULL,
    PRIMARY KEY (invoice_id, position)
);

-- A finalized invoice and its lines are immutable (DESIGN.md §6), enforced here and not only in
-- code. A draft may change freely. An open invoice may only move to paid, void or
-- uncollectible (and an uncollectible one to paid or void, as Stripe allows), changing nothing
-- but the status columns. Corrections are credit notes.
CREATE FUNCTION guard_invoice() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'draft' THEN
        IF TG_OP = 'DELETE' THEN
            RETURN OLD;
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'invoice % is finalized and cannot be deleted; void it or issue a credit note', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    IF NOT ((OLD.status = 'open' AND NEW.status IN ('paid', 'void', 'uncollectible'))
            OR (OLD.status = 'uncollectible' AND NEW.status IN ('paid', 'void'))) THEN
        RAISE EXCEPTION 'invoice % is %: it cannot become %', OLD.id, OLD.status, NEW.status
            USING ERRCODE = 'check_violation';
    END IF;
    IF (NEW.id, NEW.customer_id, NEW.subscription_id, NEW.boundary, NEW.kind, NEW.currency,
        NEW.issuing_entity, NEW.number, NEW.number_seq, NEW.period_start, NEW.period_end,
        NEW.subtotal, NEW.discount, NEW.tax, NEW.total, NEW.credit_applied, NEW.amount_due,
        NEW.finalize_at, NEW.finalized_at, NEW.rating_inputs, NEW.test_clock_id, NEW.traceparent,
        NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.customer_id, OLD.subscription_id, OLD.boundary, OLD.kind, OLD.currency,
        OLD.issuing_entity, OLD.number, OLD.number_seq, OLD.period_start, OLD.period_end,
        OLD.subtotal, OLD.discount, OLD.tax, OLD.total, OLD.credit_applied, OLD.amount_due,
        OLD.finalize_at, OLD.finalized_at, OLD.rating_inputs, OLD.test_clock_id, OLD.traceparent,
        OLD.created_at) THEN
        RAISE EXCEPTION 'invoice % is finalized: only its status may change', OLD.id
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER invoices_immutable BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION guard_invoice();

CREATE FUNCTION guard_invoice_line() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    parent_status text;
BEGIN
    -- A missing parent is the foreign key's business, not this trigger's.
    IF TG_OP <> 'INSERT' THEN
        SELECT status INTO parent_status FROM invoices WHERE id = OLD.invoice_id;
        IF parent_status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is finalized: its lines cannot change', OLD.invoice_id
                USING ERRCODE = 'check_violation';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        SELECT status INTO parent_status FROM invoices WHERE id = NEW.invoice_id;
        IF parent_status <> 'draft' THEN
            RAISE EXCEPTION 'invoice % is finalized: no line can be added to it', NEW.invoice_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER invoice_lines_immutable BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
    FOR EACH ROW EXECUTE FUNCTION guard_invoice_line();
-- TRUNCATE skips row triggers: refuse it outright on both tables.
CREATE FUNCTION forbid_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% cannot be truncated', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER invoices_no_truncate BEFORE TRUNCATE ON invoices
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_truncate();
CREATE TRIGGER invoice_lines_no_truncate BEFORE TRUNCATE ON invoice_lines
    FOR EACH STATEMENT EXECUTE FUNCTION forbid_truncate();

-- Gapless numbers per issuing entity (DESIGN.md §6). Never a sequence: a sequence value is
-- consumed by a transaction that rolls back. The counter row is updated in the finalizing
-- transaction, so a rollback returns its number; the row lock serialises finalizations of one
-- entity for the few microseconds between the update and the commit.
CREATE TABLE invoice_number_counters (
    issuing_entity text PRIMARY KEY,
    prefix text NOT NULL,
    last_number bigint NOT NULL DEFAULT 0 CHECK (last_number >= 0)
);
INSERT INTO invoice_number_counters (issuing_entity, prefix) VALUES ('default', 'INV');

-- Customer credit balance: minor units owed TO the customer, one currency per customer. The
-- ledger is the truth; `customer_balances` is its running sum, locked by the writer.
CREATE TABLE customer_balances (
    customer_id text PRIMARY KEY REFERENCES customers (id),
    currency text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE customer_balance_transactions (
    id text PRIMARY KEY,
    customer_id text NOT NULL REFERENCES customers (id),
    currency text NOT NULL,
    -- Positive: credit given to the customer; negative: credit used to pay an invoice.
    amount bigint NOT NULL CHECK (amount <> 0),
    invoice_id text REFERENCES invoices (id),
    reason text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_balance_transactions_customer ON customer_balance_transactions (customer_id, created_at);

-- Built-in tax rates (an external tax engine comes later), by the customer's billing country
-- and the product's tax code; tax_code '' is the country's default rate for any other code.
-- The rows are those of billing.domain.tax.BUILT_IN (standard VAT/GST, reduced e-book rates);
-- the invoicer rates from this table, so operators can correct a rate without a release.
CREATE TABLE tax_rates (
    id text PRIMARY KEY,
    country text NOT NULL CHECK (country ~ '^[A-Z]{2}$'),
    tax_code text NOT NULL DEFAULT '',
    percentage numeric NOT NULL CHECK (percentage >= 0 AND percentage < 100),
    display_name text NOT NULL,
    UNIQUE (country, tax_code)
);
INSERT INTO tax_rates (id, country, tax_code, percentage, display_name) VALUES
    ('AT-standard', 'AT', '', 20, 'AT standard rate'),
    ('AU-standard', 'AU', '', 10, 'AU standard rate'),
    ('BE-standard', 'BE', '', 21, 'BE standard rate'),
    ('CH-standard', 'CH', '', 8.1, 'CH standard rate'),
    ('DE-standard', 'DE', '', 19, 'DE standard rate'),
    ('DK-standard', 'DK', '', 25, 'DK standard rate'),
    ('ES-standard', 'ES', '', 21, 'ES standard rate'),
    ('FI-standard', 'FI', '', 25.5, 'FI standard rate'),
    ('FR-standard', 'FR', '', 20, 'FR standard rate'),
    ('GB-standard', 'GB', '', 20, 'GB standard rate'),
    ('IE-standard', 'IE', '', 23, 'IE standard rate'),
    ('IT-standard', 'IT', '', 22, 'IT standard rate'),
    ('JP-standard', 'JP', '', 10, 'JP standard rate'),
    ('NL-standard', 'NL', '', 21, 'NL standard rate'),
    ('NO-standard', 'NO', '', 25, 'NO standard rate'),
    ('NZ-standard', 'NZ', '', 15, 'NZ standard rate'),
    ('PL-standard', 'PL', '', 23, 'PL standard rate'),
    ('PT-standard', 'PT', '', 23, 'PT standard rate'),
    ('SE-standard', 'SE', '', 25, 'SE standard rate'),
    ('DE-ebook', 'DE', 'ebook', 7, 'DE reduced rate'),
    ('FR-ebook', 'FR', 'ebook', 5.5, 'FR reduced rate'),
    ('GB-ebook', 'GB', 'ebook', 0, 'GB reduced rate'),
    ('IE-ebook', 'IE', 'ebook', 0, 'IE reduced rate'),
    ('SE-ebook', 'SE', 'ebook', 6, 'SE reduced rate');

-- Transactional outbox (DESIGN.md §6): every invoice state change writes its event here in the
-- same transaction. A relay claims undelivered rows (SKIP LOCKED + lease, never "id above the
-- last one seen", which loses rows committed out of order) and marks them delivered.
CREATE TABLE outbox_events (
    id text PRIMARY KEY,
    type text NOT NULL,
    aggregate_id text NOT NULL,
    payload jsonb NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    available_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    lease_token uuid,
    lease_expires_at timestamptz,
    delivered_at timestamptz
);
CREATE INDEX outbox_events_pending ON outbox_events (available_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_events_aggregate ON outbox_events (aggregate_id, created_at);
ALTER TABLE outbox_events SET (
    autovacuum_analyze_scale_factor = 0.01, autovacuum_analyze_threshold = 100,
    autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 100
);
