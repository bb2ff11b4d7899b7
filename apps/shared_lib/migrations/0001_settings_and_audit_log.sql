-- shared_lib 0001: site settings and the audit log.
--
-- settings holds one row per key. Fixtures maintain default_value and the
-- descriptive columns, while setting_value is what the tenant (or an app) has
-- set explicitly. Readers use COALESCE(setting_value, default_value), so
-- re-applying fixtures on every migrate never overwrites a tenant's choice.

CREATE TABLE settings (
    setting_key VARCHAR(140) NOT NULL PRIMARY KEY,
    setting_value TEXT,
    default_value TEXT,
    value_type VARCHAR(16) NOT NULL DEFAULT 'string',
    owner_app VARCHAR(64),
    description VARCHAR(255),
    updated_at VARCHAR(32)
);

-- Append-only record of who did what to which document.
-- ref_type is a table or document type (customer, project, app, ...),
-- ref_id the primary key of the row it refers to. detail is free text or JSON.
CREATE TABLE audit_log (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    at VARCHAR(32) NOT NULL,
    actor VARCHAR(140) NOT NULL,
    action VARCHAR(64) NOT NULL,
    ref_type VARCHAR(64),
    ref_id VARCHAR(140),
    detail TEXT
);

CREATE INDEX idx_audit_log_ref ON audit_log (ref_type, ref_id);
CREATE INDEX idx_audit_log_at ON audit_log (at);
CREATE INDEX idx_audit_log_actor_at ON audit_log (actor, at);
