-- tenant_ops 0001: customers and their contacts.
--
-- Ids are application-generated strings (CUST-0001, CONT-0001, ...).
-- Links between tables are plain VARCHAR columns without FOREIGN KEY
-- constraints (like Frappe link fields), so fixtures, imports and app
-- uninstalls never fail on ordering. Integrity is kept by the application.

-- status: lead, active, inactive, churned
CREATE TABLE customers (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    customer_name VARCHAR(140) NOT NULL,
    status VARCHAR(32) NOT NULL DEFAULT 'active',
    industry VARCHAR(64),
    email VARCHAR(140),
    phone VARCHAR(32),
    website VARCHAR(255),
    billing_currency VARCHAR(3),
    account_manager VARCHAR(140),
    notes TEXT,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);

CREATE INDEX idx_customers_status ON customers (status);
CREATE INDEX idx_customers_customer_name ON customers (customer_name);
CREATE INDEX idx_customers_account_manager ON customers (account_manager);

CREATE TABLE contacts (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    customer_id VARCHAR(64) NOT NULL,
    first_name VARCHAR(140) NOT NULL,
    last_name VARCHAR(140),
    email VARCHAR(140),
    phone VARCHAR(32),
    job_title VARCHAR(140),
    is_primary INTEGER NOT NULL DEFAULT 0,
    created_at VARCHAR(32) NOT NULL,
    updated_at VARCHAR(32) NOT NULL
);

CREATE INDEX idx_contacts_customer_id ON contacts (customer_id);
CREATE INDEX idx_contacts_email ON contacts (email);
