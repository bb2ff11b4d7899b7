-- Reverts 0002: the tables go, and their indexes with them, newest first.

DROP TABLE tasks;
DROP TABLE projects;
DROP TABLE task_priorities;
DROP TABLE task_statuses;
