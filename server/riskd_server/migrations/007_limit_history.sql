-- riskd schema, version 7: the last versions of every limit (issue 10, "Limit versions are kept").
--
-- One row per limit per change (upsert, delete, import, template), written in the same
-- transaction as the change to the limits table, then pruned to the newest limit_history
-- (setting, default 20) rows of each limit touched. who is the caller's peer address until
-- authentication exists. A deletion keeps only who/when/action (the limit columns are NULL).

CREATE TABLE limit_history (
    id                   bigint GENERATED ALWAYS AS IDENTITY,  -- write order; no key of its own:
                                                               -- rows are found by the index below
    limit_id             text NOT NULL,
    limits_version       bigint NOT NULL,
    who                  text NOT NULL DEFAULT '',
    ts                   timestamptz NOT NULL,
    action               text NOT NULL,
    deleted              boolean NOT NULL,
    kind                 smallint,
    account              text,
    symbol               text,
    threshold            double precision,
    warn_fraction        double precision,
    disabled             boolean,
    description          text,
    template             text,
    reference_volatility double precision,
    min_scale            double precision
);

CREATE INDEX limit_history_by_limit ON limit_history (limit_id, id);
