-- riskd schema, version 2: fewer index writes per order, so the write-behind keeps up with the engine.
--
-- Every accepted order is inserted once and updated when it fills or closes. With no index on a
-- column the update changes (status, closed_seq, open_quantity) and free room on the page
-- (fillfactor), that update is HOT: one heap record, no index entries. The indexes dropped here
-- served only start-up recovery (which now scans orders once) or no query at all (audit tables).

DROP INDEX IF EXISTS orders_open;
DROP INDEX IF EXISTS orders_closed;
DROP INDEX IF EXISTS executions_order;
DROP INDEX IF EXISTS check_events_ts;
-- Room for the one update most orders get (applies to pages written from now on).
ALTER TABLE orders SET (fillfactor = 50);
