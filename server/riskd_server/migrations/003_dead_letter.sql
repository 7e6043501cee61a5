-- riskd schema, version 3: rows the database refuses are kept here instead of blocking every write.
--
-- When a flush fails with a data error (SQLSTATE class 22, 23 or 54) the write-behind splits it
-- until the refused rows are alone, writes the rest, and records each refused row here with its
-- error. riskd only inserts into this table; read it, fix or re-apply the rows, and delete them.

CREATE TABLE dead_letter (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at  timestamptz NOT NULL DEFAULT now(),
    table_name text NOT NULL,        -- the table the row was meant for
    action     text NOT NULL,        -- insert, update, upsert or delete
    row_data   json NOT NULL,        -- column -> value; timestamps ISO 8601, NaN/±Infinity as strings
    sqlstate   text,                 -- NULL when the refusal came without one
    error      text NOT NULL
);
