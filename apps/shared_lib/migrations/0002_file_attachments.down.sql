-- Reverts 0002: the table goes, and its indexes with it.

DROP TABLE file_attachments;
