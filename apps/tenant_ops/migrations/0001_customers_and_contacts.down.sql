-- Reverts 0001: the tables go, and their indexes with them (contacts first, then customers).

DROP TABLE contacts;
DROP TABLE customers;
