-- Reverts 0001: the tables go, and their indexes with them.

DROP TABLE audit_log;
DROP TABLE settings;
