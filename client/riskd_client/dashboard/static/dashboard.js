// riskd risk desk: one EventSource to the dashboard, everything rendered here, nothing fetched elsewhere.
// Events: sync (full view), alerts (new, oldest first), accounts (changed rows), status, missed.
'use strict';

const MAX_FEED = 2000;       // alerts kept in the page (newest first)
const MAX_FEED_ROWS = 400;   // rows drawn after filtering
const MAX_ACCOUNT_ROWS = 300;
const LIMITS_SHOWN = 3;
const SEV_RANK = { INFO: 1, WARNING: 2, CRITICAL: 3 };
const CHECKS = ['MAX_ORDER_QUANTITY', 'MAX_ORDER_NOTIONAL', 'MAX_POSITION', 'MAX_GROSS_EXPOSURE',
  'MAX_NET_EXPOSURE', 'PRICE_COLLAR', 'MAX_ORDER_RATE', 'MAX_OPEN_ORDERS', 'RESTRICTED_SYMBOL', 'MAX_VAR',
  'INVALID_ORDER', 'DUPLICATE_ORDER_ID', 'TRADING_HALTED', 'REDUCE_ONLY', 'NO_REFERENCE_PRICE'];
const KINDS = ['CHECK_REJECT', 'CHECK_WARNING', 'TRADING_STATE', 'LIMIT_CHANGED', 'OVERFILL', 'LATE_FILL',
  'UNKNOWN_FILL', 'BREAKER_OPEN', 'BACKLOG', 'SUBSCRIBER_DROPPED', 'ALERTS_LOST',
  'JOURNAL_FAILED'];

const S = {
  accounts: new Map(),   // account -> row view (v = state version it was read at)
  alerts: [],            // newest first, at most MAX_FEED
  seqs: new Set(),       // seqs in `alerts`, to drop the overlap of a re-sync
  status: null,
  newestDrawn: 0,        // highest seq drawn, to flash what is new
  missedFrames: 0,
  skipped: 0,
  events: 0,
  lastEvent: 0,
  dirtyAccounts: true,
  dirtyFeed: true,
  scheduled: false,
};

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

// ------------------------------------------------------------------ formatting

function fmt(x) {
  if (x === null || x === undefined) return '—';
  const a = Math.abs(x);
  if (a >= 1e12) return (x / 1e12).toFixed(2) + 'T';
  if (a >= 1e9) return (x / 1e9).toFixed(2) + 'B';
  if (a >= 1e6) return (x / 1e6).toFixed(2) + 'M';
  if (a >= 1e4) return (x / 1e3).toFixed(1) + 'K';
  return x.toLocaleString('en-US', { maximumFractionDigits: a >= 100 ? 0 : 4 });
}
const short = (check) => check.replace(/^MAX_/, '').replace(/_/g, ' ').toLowerCase();
const kindName = (kind) => kind.replace(/^CHECK_/, '').toLowerCase().replace(/_/g, ' ');
function what(a) {  // a reject shows its check; other kinds their name (and check, for warnings)
  if (a.kind === 'CHECK_REJECT' && a.check) return `<b>${esc(short(a.check))}</b>`;
  return esc(kindName(a.kind)) + (a.check ? ` <b>${esc(short(a.check))}</b>` : '');
}
function level(u) { return u === null ? 1 : u >= 1 ? 4 : u >= 0.8 ? 3 : u >= 0.6 ? 2 : 1; }
function clockTime(t) {
  const d = new Date(t * 1000);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

// ------------------------------------------------------------------ filters (also kept in the URL hash)

const F = { severity: '', account: '', check: '', kind: '', search: '', sort: 'util' };

function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  for (const k of Object.keys(F)) if (h.has(k)) F[k] = h.get(k);
}
function writeHash() {
  const h = new URLSearchParams();
  for (const [k, v] of Object.entries(F)) if (v && !(k === 'sort' && v === 'util')) h.set(k, v);
  const s = h.toString();
  history.replaceState(null, '', s ? '#' + s : location.pathname);
}
function matches(a) {
  if (F.severity && (SEV_RANK[a.sev] || 0) < SEV_RANK[F.severity]) return false;
  if (F.account && a.account !== F.account) return false;
  if (F.check && a.check !== F.check) return false;
  if (F.kind && a.kind !== F.kind) return false;
  return true;
}

function setupFilters() {
  for (const c of CHECKS) $('f-check').add(new Option(short(c), c));
  for (const k of KINDS) $('f-kind').add(new Option(k.toLowerCase().replace(/_/g, ' '), k));
  readHash();
  const bind = (id, key, ev) => {
    const el = $(id);
    el.value = F[key];
    el.addEventListener(ev, () => {
      F[key] = el.value.trim();
      el.classList.toggle('active', !!F[key] && key !== 'sort');
      writeHash();
      S.dirtyFeed = S.dirtyAccounts = true;
      schedule();
    });
    el.classList.toggle('active', !!F[key] && key !== 'sort');
  };
  bind('f-severity', 'severity', 'change');
  bind('f-account', 'account', 'input');
  bind('f-check', 'check', 'change');
  bind('f-kind', 'kind', 'change');
  bind('account-search', 'search', 'input');
  bind('account-sort', 'sort', 'change');
  $('f-clear').addEventListener('click', () => {
    for (const [id, key] of [['f-severity', 'severity'], ['f-account', 'account'], ['f-check', 'check'], ['f-kind', 'kind']]) {
      F[key] = ''; $(id).value = ''; $(id).classList.remove('active');
    }
    writeHash(); S.dirtyFeed = true; schedule();
  });
  // clicking an account anywhere filters the feed by it
  document.addEventListener('click', (e) => {
    const cell = e.target.closest('[data-pick-account]');
    if (!cell) return;
    F.account = cell.dataset.pickAccount; $('f-account').value = F.account;
    $('f-account').classList.add('active'); writeHash(); S.dirtyFeed = true; schedule();
  });
}

// ------------------------------------------------------------------ applying events

function addAlerts(list) {  // list oldest first
  let added = 0;
  for (const a of list) {
    if (S.seqs.has(a.seq)) continue;
    S.seqs.add(a.seq); S.alerts.push(a); added++;
  }
  if (!added) return;
  S.alerts.sort((x, y) => y.seq - x.seq);
  while (S.alerts.length > MAX_FEED) S.seqs.delete(S.alerts.pop().seq);
  S.dirtyFeed = true;
}
function putAccounts(rows) {
  for (const r of rows) {
    const old = S.accounts.get(r.account);
    if (!old || old.v <= r.v) S.accounts.set(r.account, r);
  }
  S.dirtyAccounts = true;
}
function onSync(d) {
  S.accounts = new Map();
  putAccounts(d.accounts);
  addAlerts(d.alerts);
  onStatus(d.status);
  S.dirtyFeed = true;
}
function onStatus(st) {
  S.status = st;
  for (const name of ['alerts', 'snapshots']) {
    const s = st.streams[name];
    let text = s.state;
    if (s.state === 'reconnecting' && s.retry_in) text = `reconnecting (${s.retry_in}s)`;
    setPill('pill-' + name, s.state, text, s.detail);
    document.body.dataset[name] = s.state;
  }
  $('target').textContent = st.target;
  const fs = $('firm-state');
  fs.textContent = st.firm_state || '—';
  fs.className = 'state ' + (st.firm_state || '');
  updateBanner();
  renderFooter();
}
function setPill(id, cls, text, title) {
  const el = $(id);
  el.className = 'pill ' + cls;
  el.querySelector('b').textContent = text;
  if (title !== undefined) el.title = title || el.title;
}

function updateBanner() {
  const b = $('banner');
  const st = S.status || {};
  const parts = [];
  let crit = false;
  if (document.body.dataset.link !== 'live') { parts.push('connection to the dashboard lost: reconnecting…'); crit = true; }
  for (const name of ['alerts', 'snapshots']) {
    const s = st.streams && st.streams[name];
    if (s && (s.state === 'reconnecting' || s.state === 'unavailable')) {
      parts.push(`risk server ${name} stream ${s.state}${s.detail ? ': ' + s.detail : ''}`);
      crit = true;
    }
  }
  if (S.missedFrames) parts.push(`this page fell behind and skipped ${S.missedFrames} update(s); the view was re-synced`);
  if (st.missed) parts.push(`${st.missed} alert(s) were no longer held by the server after a reconnect`);
  if (st.dropped) parts.push(`the server dropped ${st.dropped} alert(s) for this dashboard (too slow)`);
  if (S.skipped) parts.push(`${S.skipped} alert(s) of bursts were not shown (see riskd alerts query)`);
  b.hidden = parts.length === 0;
  b.className = 'banner' + (crit ? ' crit' : '');
  b.textContent = parts.join(' · ');
}

// ------------------------------------------------------------------ rendering (batched per animation frame)

function schedule() {
  if (S.scheduled) return;
  S.scheduled = true;
  requestAnimationFrame(() => { S.scheduled = false; render(); });
}

function limitCell(l) {
  const u = l.util;
  const pct = u === null ? '—' : (u * 100).toFixed(u >= 10 ? 0 : 1) + '%';
  const width = u === null ? 0 : Math.max(0, Math.min(1, u)) * 100;
  const label = `<b>${esc(short(l.kind))}</b>${l.symbol ? ' ' + esc(l.symbol) : ''}`;
  return `<div class="lim l${level(u)}" title="${esc(l.id)}: ${esc(l.kind)} ${l.symbol ? esc(l.symbol) + ' ' : ''}${fmt(l.obs)} of ${fmt(l.thr)}">` +
    `<span class="name">${label}</span><span class="bar"><span style="width:${width.toFixed(1)}%"></span></span>` +
    `<span class="pct">${pct}</span><span class="ot">${fmt(l.obs)} / ${fmt(l.thr)}</span></div>`;
}

const STATE_RANK = { HALTED: 0, REDUCING: 1, ACTIVE: 2 };
const SORTS = {
  util: (a, b) => b.max_util - a.max_util || a.account.localeCompare(b.account),
  gross: (a, b) => (b.gross || 0) - (a.gross || 0),
  net: (a, b) => Math.abs(b.net || 0) - Math.abs(a.net || 0),
  account: (a, b) => a.account.localeCompare(b.account),
  state: (a, b) => (STATE_RANK[a.state] ?? 3) - (STATE_RANK[b.state] ?? 3) || b.max_util - a.max_util,
};

function renderAccounts() {
  const all = [...S.accounts.values()];
  let gross = 0, net = 0, near = 0, breached = 0, halted = 0;
  for (const a of all) {
    gross += a.gross || 0; net += a.net || 0;
    if (a.state === 'HALTED' || a.state === 'REDUCING') halted++;
    for (const l of a.limits) { if (l.util >= 1) breached++; else if (l.util >= 0.8) near++; }
  }
  setKpi('k-accounts', all.length, false); setKpi('k-gross', fmt(gross), false); setKpi('k-net', fmt(net), false);
  setKpi('k-near', near, near > 0); setKpi('k-breached', breached, breached > 0); setKpi('k-halted', halted, halted > 0);

  const q = F.search.toLowerCase();
  const rows = (q ? all.filter((a) => a.account.toLowerCase().includes(q)) : all).sort(SORTS[F.sort] || SORTS.util);
  const html = [];
  for (const a of rows.slice(0, MAX_ACCOUNT_ROWS)) {
    const lims = a.limits.slice(0, LIMITS_SHOWN).map(limitCell).join('') || '<span class="nolimits">no limits</span>';
    const pos = a.positions.map((p) => `${p.symbol} ${fmt(p.qty)} @ ${fmt(p.mark)}`).join('\n');
    html.push(`<tr data-account="${esc(a.account)}" data-state="${esc(a.state)}" class="${a.max_util >= 1 ? 'breached' : ''}">` +
      `<td class="acct" data-pick-account="${esc(a.account)}" title="show this account's alerts">${esc(a.account)}</td>` +
      `<td><span class="state ${esc(a.state)}">${esc(a.state || '—')}</span></td>` +
      `<td class="num">${fmt(a.gross)}</td><td class="num ${a.net < 0 ? 'neg' : ''}">${fmt(a.net)}</td>` +
      `<td class="num">${a.open}</td><td class="num" title="${esc(pos)}">${a.npos}</td>` +
      `<td class="limits">${lims}</td></tr>`);
  }
  $('accounts').tBodies[0].innerHTML = html.join('');
  $('accounts-empty').hidden = rows.length > 0;
  $('accounts-shown').textContent = rows.length > MAX_ACCOUNT_ROWS ? `top ${MAX_ACCOUNT_ROWS} of ${rows.length}` : `${rows.length}`;
  const dl = $('account-list');
  if (dl.options.length !== all.length) dl.innerHTML = all.map((a) => `<option value="${esc(a.account)}">`).join('');
}

function renderFeed() {
  let crit = 0, warn = 0, info = 0;
  for (const a of S.alerts) { if (a.sev === 'CRITICAL') crit++; else if (a.sev === 'WARNING') warn++; else if (a.sev === 'INFO') info++; }
  setKpi('k-crit', crit, crit > 0); setKpi('k-warn', warn, warn > 0); setKpi('k-info', info, info > 0);
  const html = [];
  let shown = 0, total = 0;
  const flashAbove = S.newestDrawn;
  for (const a of S.alerts) {
    if (!matches(a)) continue;
    total++;
    if (shown >= MAX_FEED_ROWS) continue;
    shown++;
    const cls = [a.sev, a.summary ? 'summary' : '', a.seq > flashAbove && flashAbove ? 'new' : ''].join(' ');
    html.push(`<tr class="${cls}" data-seq="${a.seq}" data-kind="${esc(a.kind)}" data-check="${esc(a.check)}" data-account="${esc(a.account)}" data-sev="${esc(a.sev)}">` +
      `<td class="t" title="seq ${a.seq}">${clockTime(a.t)}</td><td><span class="sev ${esc(a.sev)}">${esc(a.sev)}</span></td>` +
      `<td class="what" title="${esc(a.kind)} ${esc(a.check)}">${what(a)}</td>` +
      `<td class="acct" data-pick-account="${esc(a.account)}">${esc(a.account)}${a.symbol ? ` <span>${esc(a.symbol)}</span>` : ''}</td>` +
      `<td class="msg" title="${esc(a.limit ? 'limit ' + a.limit : '')}${a.order ? ' order ' + esc(a.order) : ''}">${esc(a.msg)}</td>` +
      `<td class="num ot">${a.obs || a.thr ? `${fmt(a.obs)} / ${fmt(a.thr)}` : ''}</td><td class="num">${a.count > 1 ? a.count : ''}</td></tr>`);
  }
  $('feed').tBodies[0].innerHTML = html.join('');
  $('feed-empty').hidden = total > 0;
  $('alerts-shown').textContent = total > shown ? `${shown} of ${total} shown` : `${total}`;
  if (S.alerts.length) S.newestDrawn = Math.max(S.newestDrawn, S.alerts[0].seq);
}

function setKpi(id, value, hot) {
  const el = $(id);
  el.textContent = value;
  el.classList.toggle('hot', !!hot);
}

function renderFooter() {
  let version = (S.status && S.status.state_version) || 0;
  for (const a of S.accounts.values()) if (a.v > version) version = a.v;
  $('foot-seq').textContent = `last alert seq ${S.alerts.length ? S.alerts[0].seq : 0}`;
  $('foot-version').textContent = `state version ${version}`;
  $('foot-loss').textContent = `events ${S.events}`;
}

function render() {
  if (S.dirtyAccounts) { S.dirtyAccounts = false; renderAccounts(); }
  if (S.dirtyFeed) { S.dirtyFeed = false; renderFeed(); }
  renderFooter();
}

// ------------------------------------------------------------------ the stream

function connect() {
  const es = new EventSource('/events');
  const on = (name, fn) => es.addEventListener(name, (e) => {
    S.events++; S.lastEvent = Date.now();
    fn(JSON.parse(e.data));
    schedule();
  });
  on('sync', onSync);
  on('alerts', (d) => { addAlerts(d.alerts); if (d.skipped) { S.skipped += d.skipped; updateBanner(); } });
  on('accounts', (d) => {
    putAccounts(d.accounts);
    if (S.status && d.firm_state !== undefined && d.firm_state !== S.status.firm_state) onStatus({ ...S.status, firm_state: d.firm_state });
  });
  on('status', onStatus);
  on('missed', (d) => { S.missedFrames += d.frames; updateBanner(); });
  es.onopen = () => { document.body.dataset.link = 'live'; setPill('pill-link', 'live', 'live'); updateBanner(); };
  es.onerror = () => {
    const state = es.readyState === EventSource.CLOSED ? 'down' : 'reconnecting';
    document.body.dataset.link = state;
    setPill('pill-link', state, state);
    updateBanner();
  };
}

function tick() { $('clock').textContent = clockTime(Date.now() / 1000).slice(0, 8); }

setupFilters();
connect();
tick();
setInterval(tick, 1000);
