-- shared_lib 0002: metadata for files attached to any document.
-- The bytes live in the site's private files directory (storage_path is
-- relative to the site folder), never in the database.

CREATE TABLE file_attachments (
    id VARCHAR(64) NOT NULL PRIMARY KEY,
    ref_type VARCHAR(64) NOT NULL,
    ref_id VARCHAR(140) NOT NULL,
    file_name VARCHAR(255) NOT NULL,
    content_type VARCHAR(127) NOT NULL DEFAULT 'application/octet-stream',
    size_bytes BIGINT NOT NULL DEFAULT 0,
    checksum_sha256 VARCHAR(64),
    storage_path VARCHAR(512) NOT NULL,
    is_private INTEGER NOT NULL DEFAULT 1,
    uploaded_by VARCHAR(140) NOT NULL,
    created_at VARCHAR(32) NOT NULL
);

CREATE INDEX idx_file_attachments_ref ON file_attachments (ref_type, ref_id);
CREATE INDEX idx_file_attachments_uploader ON file_attachments (uploaded_by, created_at);
