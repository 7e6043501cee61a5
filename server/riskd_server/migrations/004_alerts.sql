-- riskd schema, version 4: the alert history beyond the in-memory ring.
--
-- Every alert riskd raises (first occurrences and dedupe summaries; the repeats a summary counts
-- are in its count) is appended here by the write-behind. seq is riskd's own alert sequence, so
-- paging newest first is an index scan of the primary key; a restart continues after max(seq).

CREATE TABLE alerts (
    seq             bigint PRIMARY KEY,
    ts              timestamptz NOT NULL,
    severity        smallint NOT NULL,             -- riskd.v1.Severity
    kind            smallint NOT NULL,             -- riskd.v1.AlertKind
    check_kind      smallint NOT NULL,             -- riskd.v1.RiskCheck, 0 when none
    account         text NOT NULL,
    symbol          text NOT NULL,
    limit_id        text NOT NULL,
    message         text NOT NULL,
    observed        double precision NOT NULL,
    threshold       double precision NOT NULL,
    count           bigint NOT NULL,
    summary         boolean NOT NULL,
    client_order_id text NOT NULL
);
