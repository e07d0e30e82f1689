-- What the subscription and invoice API needs beyond 0005: the customer's payment-method flag,
-- payments, credit notes, and deletable test clocks (docs/architecture.md "Subscription and
-- invoice API").

-- A trial of a plan that requires a payment method cancels at its end while this is false.
ALTER TABLE customers ADD COLUMN has_payment_method boolean NOT NULL DEFAULT false;

-- A deleted clock keeps its row: its customers still reference it and stay frozen at its last
-- time (nothing of theirs is due after it), which is what deleting a clock means.
ALTER TABLE test_clocks ADD COLUMN deleted_at timestamptz;

-- Payment attempts reported by the payment provider. A succeeded payment pays the invoice in
-- full (RecordInvoicePayment); at most one per invoice, and a provider's reference pays once.
CREATE TABLE invoice_payments (
    id text PRIMARY KEY,
    invoice_id text NOT NULL REFERENCES invoices (id),
    outcome text NOT NULL CHECK (outcome IN ('succeeded', 'failed')),
    amount bigint NOT NULL CHECK (amount >= 0),
    provider text NOT NULL CHECK (provider <> ''),
    provider_reference text NOT NULL CHECK (provider_reference <> ''),
    failure_message text NOT NULL DEFAULT '',
    paid_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoice_payments_invoice ON invoice_payments (invoice_id, created_at);
CREATE UNIQUE INDEX invoice_payments_one_success ON invoice_payments (invoice_id)
    WHERE outcome = 'succeeded';
CREATE UNIQUE INDEX invoice_payments_reference ON invoice_payments (provider, provider_reference)
    WHERE outcome = 'succeeded';

-- Credit notes: the only correction of a finalized invoice (DESIGN.md §6). Amounts are minor
-- units of the invoice line's total, tax included.
CREATE TABLE credit_notes (
    id text PRIMARY KEY,
    invoice_id text NOT NULL REFERENCES invoices (id),
    number text NOT NULL UNIQUE,
    reason text NOT NULL DEFAULT '',
    memo text NOT NULL DEFAULT '',
    total bigint NOT NULL CHECK (total > 0),
    -- Of total: what went to the customer's credit balance (the invoice was already paid).
    credit_balance_amount bigint NOT NULL DEFAULT 0 CHECK (credit_balance_amount BETWEEN 0 AND total),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_notes_invoice ON credit_notes (invoice_id, created_at);

CREATE TABLE credit_note_lines (
    credit_note_id text NOT NULL REFERENCES credit_notes (id),
    invoice_id text NOT NULL,
    line_position integer NOT NULL,
    amount bigint NOT NULL CHECK (amount > 0),
    PRIMARY KEY (credit_note_id, line_position),
    FOREIGN KEY (invoice_id, line_position) REFERENCES invoice_lines (invoice_id, position)
);
CREATE INDEX credit_note_lines_invoice_line ON credit_note_lines (invoice_id, line_position);

-- Payments and credit notes are records of what happened: never edited, never deleted.
CREATE FUNCTION forbid_edits() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER invoice_payments_immutable BEFORE UPDATE OR DELETE ON invoice_payments
    FOR EACH ROW EXECUTE FUNCTION forbid_edits();
CREATE TRIGGER credit_notes_immutable BEFORE UPDATE OR DELETE ON credit_notes
    FOR EACH ROW EXECUTE FUNCTION forbid_edits();
CREATE TRIGGER credit_note_lines_immutable BEFORE UPDATE OR DELETE ON credit_note_lines
    FOR EACH ROW EXECUTE FUNCTION forbid_edits();
