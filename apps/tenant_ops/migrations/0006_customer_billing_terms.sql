-- tenant_ops 0006: billing terms on customers.
--
-- Schema evolution in plain SQL. One column per ALTER TABLE statement keeps it
-- valid on SQLite, which cannot add several columns at once. New NOT NULL
-- columns need a DEFAULT so existing rows stay valid.

ALTER TABLE customers ADD COLUMN tax_id VARCHAR(64);
ALTER TABLE customers ADD COLUMN payment_terms_days INTEGER NOT NULL DEFAULT 30;
ALTER TABLE customers ADD COLUMN credit_limit DECIMAL(18,2);

CREATE INDEX idx_customers_tax_id ON customers (tax_id);
