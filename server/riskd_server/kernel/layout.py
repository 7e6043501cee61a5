"""Column layout of the state arrays the kernels share with the engine.

State is grouped into a few 2-D arrays (numba charges per array argument, see PERF-NOTES), each
column named here. Every value is a plain int so numba folds them as constants.
"""

from __future__ import annotations

# acct: float64[accounts, A_FIELDS]
# The four exposure sums are compensated (double-double) sums: the value is hi + lo, kept exact to
# ~2**-105 of the largest partial sum by kernel.exposure.dd_add, so a huge term added and taken out
# again leaves the small ones as they were. Each is the sum of its terms as they are now (an open
# order's term is its open qty * p, stored in its slot at OF_TERM; a book's is |pos| * mark or
# pos * mark), not a history of increments, and the open (position) sums are reset to exactly 0
# when the account's last open order closes (last non-zero position goes flat).
# A row is three 64-byte lines: the eight sum words, then what every check reads (open count,
# trading state, cached limit levels), then the token bucket and the position count, so a check
# loads two lines of its account (a third only under a rate limit).
A_OPEN_GROSS = 0  # sum of open qty * order p (hi)
A_OPEN_GROSS_LO = 1  # (lo)
A_OPEN_NET = 2  # sum of +/- open qty * order p (hi)
A_OPEN_NET_LO = 3
A_POS_GROSS = 4  # sum of |pos| * mark (hi)
A_POS_GROSS_LO = 5
A_POS_NET = 6  # sum of pos * mark (hi)
A_POS_NET_LO = 7
A_OPEN_COUNT = 8  # open orders
A_TRADING = 9  # TradingState of the account (0 = unset = active)
# Resolved account-level limits (GROSS, NET, ORDER_RATE, OPEN_ORDERS take no symbol, so they depend
# on the account alone), cached like the book's (see B_LIM_TAG): A_LIM_TAG the limit-book version
# plus one they were resolved for (0 = never), A_LVL_* report levels, A_RATE the order-rate
# threshold or -1 for none.
A_LIM_TAG = 10
A_LVL_GROSS = 11
A_LVL_NET = 12
A_LVL_RATE = 13
A_LVL_OPEN = 14
A_RATE = 15
A_TOKENS = 16  # token bucket level
A_LAST_TS = 17  # token bucket last refill time
A_BUCKET_SET = 18  # 1 once the bucket has been used (starts full)
A_POS_COUNT = 19  # books of the account with a non-zero position
# The MAX_VAR report level (kernel.var), resolved with the other account-level kinds (A_LIM_TAG);
# +inf when no MAX_VAR limit applies, so an account without one never reads its VaR terms.
A_LVL_VAR = 20
A_FIELDS = 24  # three lines (21 used)

# sym: float64[symbols, S_FIELDS]; NaN = not set. sym_books: int64[symbols], see BP_NEXT.
S_PRICE = 0  # last UpdatePrices price
S_FILL = 1  # last fill price
S_FIELDS = 2

# book (one per account x symbol): float64[books, B_FIELDS], one 64-byte cache line per row (the
# engine aligns the rows): a check reads exactly one line of its book.
B_POS = 0
B_OPEN_BUY = 1
B_OPEN_SELL = 2
# Resolved per-pair limits cached next to the position (see kernel.checks): B_LIM_TAG the limit-book
# version they were resolved for, plus one (0 = never resolved); B_LVL_* the report level of the
# limit of that kind that applies (an observed value above it may breach or warn: min(threshold,
# warn level), +inf for no limit). A restricted symbol sets B_LVL_QTY to -inf, so every order on it
# takes the exact path.
B_LIM_TAG = 3
B_LVL_QTY = 4
B_LVL_NOTIONAL = 5
B_LVL_POSITION = 6
B_LVL_COLLAR = 7
B_FIELDS = 8

# book_pair: int64[books, BP_FIELDS], the (account, symbol) of each book row, apart from the row
# because only fills, position loads and persistence need it. BP_NEXT links the books of one
# symbol (head in sym_books[symbol], -1 ends the list), each from when it is opened (checks.open_book:
# a mark change revalues open orders too, in the VaR terms, kernel.var), so a mark change visits
# only that symbol's books. BP_UNLINKED marks a book not linked yet (none since the VaR work).
BP_ACCOUNT = 0
BP_SYMBOL = 1
BP_NEXT = 2
BP_FIELDS = 3
BP_UNLINKED = -2

# An order slot is one 64-byte row of one buffer seen through two views, ordf (float64) and ordi
# (int64), each [slots, O_FIELDS]; every column is read through one view only.
# Only open orders hold slots, so a slot needs no state; column 7 is spare (the row stays one
# 64-byte line).
OF_QTY = 0  # original quantity
OF_OPEN = 1  # open quantity
OF_PRICE = 2  # reference price p fixed at acceptance
OF_TERM = 3  # open quantity * p: the order's term in its account's open exposure sums
OI_SIDE = 4
OI_BOOK = 5
OI_ACCOUNT = 6
O_FIELDS = 8
# A closed order holds no slot: its slot goes back to the free stack at once (so the next accept
# reuses a line still in cache), and its id stays in the order table, for the duplicate test and
# late fills, with the value ORDER_CLOSED_BASE - (2 * book + (side - 1)) instead of a slot
# (executions.closed_value). Order-table values: >= 0 an open order's slot, -1 never (ht_find's
# "absent"), <= ORDER_CLOSED_BASE a closed order.
ORDER_CLOSED_BASE = -2

# ring: int64[closed_order_retention + max_batch], the id keys of the retained closed orders, oldest
# at ctr[C_RING_HEAD]. A batch's closes are appended and the oldest beyond ctr[C_RING_KEEP] are
# evicted (their ids deleted from the order table) after the batch, in one pass (executions.trim_ring).

# ctr: int64[C_FIELDS] counters
C_BOOKS = 0  # books in use
C_FREE_TOP = 1  # free slots on the free stack
C_RING_HEAD = 2  # oldest entry of the closed-order ring
C_RING_COUNT = 3  # entries in the closed-order ring
C_OPEN = 4  # open orders, all accounts
C_FIRM_TRADING = 5  # firm-wide TradingState (0 = unset)
C_SLOTS = 6  # order slots allocated (capacity of ordf/ordi in use)
C_RING_KEEP = 7  # closed ids the ring keeps between batches (closed_order_retention)
C_FIELDS = 8

# Order batch input: oi int64[n, IN_I_FIELDS], of float64[n, IN_F_FIELDS]
IN_ACCOUNT = 0  # dense id, or -1 when the name is invalid
IN_SYMBOL = 1
IN_SIDE = 2
IN_KEY = 3  # client_order_id hash
IN_BOOK = 4  # scratch: the kernel's gather pass stores the order's book index (-1 none yet)
IN_I_FIELDS = 5
IN_QTY = 0
IN_PRICE = 1
IN_F_FIELDS = 2

# Violations out: vi int64[m, V_FIELDS], vf float64[m, 2]
V_ORDER = 0
V_CHECK = 1
V_LIMIT = 2  # limit index, or LIMIT_BUILTIN / LIMIT_CAPACITY
V_WARNING = 3
V_FIELDS = 4
LIMIT_BUILTIN = -1
LIMIT_CAPACITY = -2  # the server's open-order capacity, not a configured limit
MAX_VIOLATIONS_PER_ORDER = 14
# Check counts (engine.counts, for metrics): int64[VC_FIELDS], violations at 2 * check + warning
# (a check is a reject-mask bit, so < 32) and the rejected orders at VC_REJECTED.
VC_CHECKS = 32
VC_REJECTED = 2 * VC_CHECKS
VC_FIELDS = VC_REJECTED + 1

# Execution outcomes (exec kernel status column)
# (engine: applied = status <= X_UNKNOWN_FILLED)
X_APPLIED = 0
X_OVERFILL = 1  # applied; the fill exceeded the open quantity
X_LATE_FILL = 2  # applied to the position; the order was already closed (cancel raced the fill)
X_UNKNOWN_FILLED = 3  # applied to the position the report named; the order is unknown (last applied)
X_UNKNOWN = 4  # statuses from here on are not applied
X_BAD_TYPE = 5
X_BAD_FILL = 6
X_CLOSED = 7
X_BAD_ORIGIN = 8  # unknown order: account, symbol and side given but not all valid (engine-set)
X_ORIGIN_FULL = 9  # unknown order: the account or symbol capacity is reached (engine-set)

# Limit tables: lim_f float64[limits, 2]
L_THRESHOLD = 0
L_WARN = 1
KINDS = 11  # RiskCheck values 0..10 index the per-kind columns

# VaR tables (kernel.var, group kernel.state.VarState), rebuilt off the hot path when a risk model
# is installed. vsym float64[symbol rows, k + VS_EXTRA]: the symbol's factor loadings in columns
# 0..k-1, then its specific variance and its total variance Sigma_ss. vacct float64[account rows,
# VA_F + 2k]: per account the cached variance wᵀ Sigma w, the specific sum Σ spec_s w_s² and the
# factor exposures f = Bᵀw (both double-double: hi, then lo). vctl float64[VC_FIELDS_VAR].
VS_SPEC = 0  # + k
VS_TOTAL = 1  # + k
VS_EXTRA = 2
VA_V = 0  # wᵀ Sigma w = |f|² + specific sum (recomputed from f after every change)
VA_SPEC = 1  # specific sum (hi)
VA_SPEC_LO = 2
VA_F = 3  # f_hi[0..k-1], then f_lo[0..k-1]
VC_ON = 0  # 1.0 when a model is installed
VC_SCALE = 1  # z * sqrt(horizon_days)
VC_K = 2  # factors k
VC_DEFAULT = 3  # default variance (default_vol²) of a symbol past the vsym rows
VC_VERSION = 4  # install counter (the tables' version)
VC_FIELDS_VAR = 5
# lim_tab int64[1 + n_acct + n_sym, KINDS], one table instead of three kernel arguments: the limit
# index (or -1) per kind of (any, any) in row 0, of (account a, any) in row 1 + a and of (any,
# symbol s) in row 1 + n_acct + s, where n_acct = lim_tab[0, LT_ACCOUNTS] (kind 0 is no kind).
LT_ACCOUNTS = 0

# Key layout for (account, symbol) pairs and exact limits; KEY_TAG keeps every such key non-zero
# (0 marks an empty hash-table bucket).
SYMBOL_BITS = 28
KEY_TAG = 1 << 62
MAX_ACCOUNTS = 1 << 24
MAX_SYMBOLS = 1 << SYMBOL_BITS
