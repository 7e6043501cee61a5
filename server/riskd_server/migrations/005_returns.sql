-- riskd schema, version 5: daily returns for the VaR risk model.
--
-- One row per (symbol, day); ImportReturns upserts by that key (COPY into a temporary table, then
-- INSERT ... ON CONFLICT), so re-importing a file changes nothing. day is YYYYMMDD as an integer:
-- the model reads the last var_window distinct days, which is an index scan on day.

CREATE TABLE returns (
    symbol text NOT NULL,
    day    integer NOT NULL CHECK (day BETWEEN 19000101 AND 29991231),
    ret    double precision NOT NULL CHECK (ret >= -1 AND ret <= 1000),  -- also refuses NaN and inf
    PRIMARY KEY (symbol, day)
);

CREATE INDEX returns_day ON returns (day);
