-- riskd schema, version 1. Applied once, in a transaction, by riskd_server.store._migrations.
-- State tables hold the latest value per key (the write-behind upserts them); audit tables are
-- append-only. NULL prices mean "not set" (the engine's NaN).

CREATE TABLE limits (
    limit_id      text PRIMARY KEY,
    kind          smallint NOT NULL,
    account       text NOT NULL DEFAULT '',       -- '' = any account
    symbol        text NOT NULL DEFAULT '',       -- '' = any symbol
    threshold     double precision NOT NULL,
    warn_fraction double precision NOT NULL DEFAULT 0,
    disabled      boolean NOT NULL DEFAULT false,
    description   text NOT NULL DEFAULT '',
    updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE trading_states (
    account    text PRIMARY KEY,                  -- '' = firm-wide
    state      smallint NOT NULL,                 -- riskd.v1.TradingState
    reason     text NOT NULL DEFAULT '',
    updated_at timestamptz NOT NULL
);

CREATE TABLE marks (
    symbol          text PRIMARY KEY,
    price           double precision,             -- last UpdatePrices price; NULL = not set
    last_fill_price double precision,             -- NULL = no fill yet
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE positions (
    account    text NOT NULL,
    symbol     text NOT NULL,
    quantity   double precision NOT NULL,         -- signed
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account, symbol)
);

-- closed_seq orders closed orders by the time they closed, so recovery can reload the newest N
-- for duplicate detection; it is NULL while the order is open.
CREATE SEQUENCE orders_closed_seq AS bigint;

CREATE TABLE orders (
    client_order_id text PRIMARY KEY,
    account         text NOT NULL,
    symbol          text NOT NULL,
    side            smallint NOT NULL CHECK (side IN (1, 2)),        -- 1 buy, 2 sell
    quantity        double precision NOT NULL,
    open_quantity   double precision NOT NULL,
    price           double precision NOT NULL,                       -- reference price at acceptance
    status          smallint NOT NULL CHECK (status IN (1, 2)),      -- 1 open, 2 closed
    accepted_at     timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    closed_seq      bigint,
    CHECK ((status = 2) = (closed_seq IS NOT NULL))
);
CREATE INDEX orders_open ON orders (client_order_id) WHERE status = 1;
CREATE UNIQUE INDEX orders_closed ON orders (closed_seq) WHERE closed_seq IS NOT NULL;

CREATE TABLE executions (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts              timestamptz NOT NULL,
    client_order_id text NOT NULL,
    exec_type       smallint NOT NULL,            -- riskd.v1.ExecType
    quantity        double precision NOT NULL,
    price           double precision NOT NULL,
    applied         boolean NOT NULL,
    error           text NOT NULL DEFAULT ''
);
CREATE INDEX executions_order ON executions (client_order_id);

CREATE TABLE check_events (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts              timestamptz NOT NULL,
    client_order_id text NOT NULL,
    account         text NOT NULL,
    symbol          text NOT NULL,
    check_kind      smallint NOT NULL,            -- riskd.v1.RiskCheck
    limit_id        text NOT NULL DEFAULT '',     -- '' for built-in checks
    observed        double precision NOT NULL,
    threshold       double precision NOT NULL,
    warning         boolean NOT NULL
);
CREATE INDEX check_events_ts ON check_events (ts);
