/**
 * The web console `ice serve` serves at `/`: one HTML shell, one script, one stylesheet, no framework,
 * no CDN, nothing fetched from another origin. Plain DOM code was enough for four views (agents, runs,
 * a run, live) and keeps the page auditable: every value from the API — guest output, kinds, payloads,
 * rule names — goes in through `textContent` or an attribute, never as markup, and the page's CSP
 * (http.ts) allows no inline script. The shell holds no data; the script asks the API for everything
 * with the bearer token the operator pastes in, kept in the tab's sessionStorage.
 */

const HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ICE console</title>
<link rel="stylesheet" href="/console/style.css">
<script type="module" src="/console/app.js"></script>
</head>
<body>
<header><strong>ICE</strong> <nav><a href="#/">Agents</a> <a href="#/runs">Runs</a> <a href="#/live">Live</a></nav> <span id="status"></span></header>
<main id="main"><p>Loading…</p></main>
</body>
</html>
`;

const CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1b1f24; background: #f6f8fa; }
header { background: #1b1f24; color: #fff; padding: 8px 16px; display: flex; gap: 16px; align-items: center; }
header a { color: #9ecbff; margin-right: 12px; text-decoration: none; }
#status { margin-left: auto; font-size: 12px; color: #c9d1d9; }
main { padding: 16px; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #d0d7de; vertical-align: top; }
th { background: #eaeef2; font-weight: 600; }
code, .mono { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; word-break: break-all; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 12px; color: #fff; }
.ok, .active, .allow { background: #1a7f37; } .error, .suspended { background: #9a6700; } .trap, .quarantined, .deny { background: #cf222e; }
.limit { background: #bc4c00; } .badge.wait { background: #9ecbff; color: #000; } .invalid { background: #8250df; } .ask { background: #0969da; } .incomplete, .unknown, .unfinished, .stopped, .deployed { background: #6e7781; }
form.filters { display: flex; gap: 8px; margin-bottom: 8px; align-items: center; }
section { margin-bottom: 20px; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 12px; background: #fff; padding: 8px; }
dt { font-weight: 600; }
svg.timeline { background: #fff; border: 1px solid #d0d7de; }
svg.timeline rect.allow { fill: #1a7f37; } svg.timeline rect.deny { fill: #cf222e; } svg.timeline rect.limit { fill: #bc4c00; }
svg.timeline rect.invalid { fill: #8250df; } svg.timeline rect.ask { fill: #0969da; }
svg.timeline rect.unknown { fill: none; stroke: #6e7781; stroke-dasharray: 3 2; }
svg.timeline rect.wait { fill: #9ecbff; }
svg.timeline text { font: 11px ui-monospace, monospace; fill: #1b1f24; }
.legend span { margin-right: 10px; }
ul.tree { list-style: none; padding-left: 16px; } ul.tree li::before { content: "└ "; color: #6e7781; }
#login { max-width: 420px; background: #fff; padding: 16px; border: 1px solid #d0d7de; }
#login input { width: 100%; margin: 8px 0; }
.new { animation: flash 2s; } @keyframes flash { from { background: #fff8c5; } to { background: #fff; } }
`;

const JS = String.raw`
const main = document.getElementById('main');
const status = document.getElementById('status');
let token = sessionStorage.getItem('ice.token') || '';

/** An element; strings become text nodes, never markup. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElementNS(tag === 'svg' || attrs.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === 'svg' || value === undefined || value === null) continue;
    if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}
const svg = (tag, attrs = {}, ...children) => el(tag, { ...attrs, svg: true }, ...children);
const badge = (text) => el('span', { class: 'badge ' + text }, text);
const link = (href, text) => el('a', { href }, text);
const short = (hex) => (hex ? String(hex).slice(0, 12) : '');

async function api(path) {
  const response = await fetch(path, { headers: { authorization: 'Bearer ' + token } });
  if (response.status === 401) { token = ''; sessionStorage.removeItem('ice.token'); login('The token was refused.'); throw new Error('unauthorized'); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function login(problem) {
  main.replaceChildren(el('form', { id: 'login', onsubmit: (e) => { e.preventDefault(); token = e.target.token.value.trim(); sessionStorage.setItem('ice.token', token); route(); } },
    el('h2', {}, 'Sign in'),
    el('p', {}, 'Paste the token from ', el('code', {}, '<state>/serve/token'), '.'),
    problem ? el('p', { class: 'problem' }, problem) : null,
    el('input', { name: 'token', type: 'password', autocomplete: 'off', 'aria-label': 'token' }),
    el('button', { type: 'submit' }, 'Sign in')));
}

function captured(value) {
  if (!value) return '';
  if ('value' in value) return typeof value.value === 'string' ? value.value : JSON.stringify(value.value);
  if ('sha256' in value) return 'sha256:' + short(value.sha256) + '… (' + value.size + ' bytes, recorded as a digest)';
  return JSON.stringify(value);
}

async function agentsView() {
  const [{ agents }, { runs }] = await Promise.all([api('/v1/agents'), api('/v1/runs?limit=200')]);
  main.replaceChildren(el('section', {}, el('h2', {}, 'Agents'), el('table', { id: 'agents' },
    el('tr', {}, ...['agent', 'state', 'component', 'queue', 'faults', 'recent outcomes'].map((h) => el('th', {}, h))),
    agents.map((a) => el('tr', { 'data-agent': a.name },
      el('td', {}, link('#/runs?component=' + encodeURIComponent(a.component.name), a.name)),
      el('td', {}, badge(a.state)),
      el('td', { class: 'mono' }, a.component.name + ' ' + short(a.component.digest)),
      el('td', {}, a.queue.length + '/' + a.queue.capacity + ' · ' + a.queue.running + ' running'),
      el('td', {}, a.faults.recent + '/' + a.faults.max),
      el('td', {}, runs.filter((r) => r.component.name === a.component.name && !r.invoked.includes(':')).slice(0, 10).map((r) => link('#/run/' + r.run, badge(r.outcome))))
    )))));
}

async function runsView(params) {
  const query = new URLSearchParams(params);
  const { agents } = await api('/v1/agents');
  const { runs } = await api('/v1/runs?' + query.toString());
  const form = el('form', { class: 'filters', onsubmit: (e) => { e.preventDefault(); const f = new FormData(e.target); const q = new URLSearchParams(); for (const [k, v] of f) if (v) q.set(k, v); location.hash = '#/runs?' + q; } },
    el('select', { name: 'component', 'aria-label': 'agent' }, el('option', { value: '' }, 'every agent'), agents.map((a) => el('option', { value: a.component.name, ...(query.get('component') === a.component.name ? { selected: '' } : {}) }, a.name))),
    el('select', { name: 'outcome', 'aria-label': 'outcome' }, el('option', { value: '' }, 'any outcome'), ['ok', 'error', 'trap', 'limit', 'incomplete'].map((o) => el('option', { value: o, ...(query.get('outcome') === o ? { selected: '' } : {}) }, o))),
    el('label', {}, el('input', { type: 'checkbox', name: 'denied', value: '1', ...(query.get('denied') ? { checked: '' } : {}) }), ' with denials'),
    el('button', { type: 'submit' }, 'Filter'));
  const table = el('table', { id: 'runs' }, el('tr', {}, ...['run', 'component', 'called', 'started', 'outcome', 'calls', 'denied'].map((h) => el('th', {}, h))), runs.map(runRow));
  main.replaceChildren(el('section', {}, el('h2', {}, 'Runs'), form, table));
  follow((records) => {
    // Live: a run that ends and passes the filters appears at the top.
    if (records.some((r) => r.type === 'run-end')) api('/v1/runs?' + query.toString()).then(({ runs: fresh }) => {
      const known = new Set([...table.querySelectorAll('tr[data-run]')].map((tr) => tr.dataset.run));
      for (const r of fresh.filter((r) => !known.has(r.run)).reverse()) table.rows[0].after(Object.assign(runRow(r), { className: 'new' }));
    });
  });
}

function runRow(r) {
  return el('tr', { 'data-run': r.run },
    el('td', { class: 'mono' }, link('#/run/' + r.run, r.run)),
    el('td', {}, r.component.name),
    el('td', { class: 'mono' }, r.invoked),
    el('td', {}, r.startedAt),
    el('td', {}, badge(r.outcome)),
    el('td', {}, String(r.calls)),
    el('td', {}, String(r.denied ?? '')));
}

async function runView(id) {
  const { records, verify, caused } = await api('/v1/runs/' + encodeURIComponent(id));
  const start = records[0].record;
  const end = records.find((r) => r.record.type === 'run-end');
  const calls = joinCalls(records.map((r) => r.record));
  const info = el('dl', { id: 'run-info' },
    el('dt', {}, 'run'), el('dd', { class: 'mono' }, start.run),
    el('dt', {}, 'component'), el('dd', { class: 'mono' }, start.component.name + ' sha256:' + short(start.component.digest)),
    el('dt', {}, 'policy'), el('dd', { class: 'mono' }, start.policy.source + ' sha256:' + short(start.policy.digest)),
    el('dt', {}, 'started'), el('dd', {}, start.at),
    el('dt', {}, 'cause'), el('dd', { class: 'mono' }, start.cause ? JSON.stringify(start.cause) : 'direct'),
    el('dt', {}, 'input'), el('dd', { class: 'mono', id: 'run-input' }, captured(start.input)),
    el('dt', {}, 'outcome'), el('dd', {}, end ? [badge(end.record.outcome), ' ', end.record.reason || '', end.record.durationUs !== undefined ? ' in ' + (end.record.durationUs / 1000).toFixed(2) + ' ms' : ''] : 'unfinished'),
    el('dt', {}, 'output'), el('dd', { class: 'mono', id: 'run-output' }, end ? captured(end.record.output) : ''),
    el('dt', {}, 'ledger root'), el('dd', { class: 'mono' }, end ? end.hash : '(no run-end yet)'),
    el('dt', {}, 'verify'), el('dd', { id: 'verify' }, verify.ok ? badge('ok') : [badge('trap'), ' seq ' + verify.seq + ': ' + verify.reason]));
  main.replaceChildren(
    el('section', {}, el('h2', {}, 'Run'), info),
    el('section', {}, el('h3', {}, 'Timeline'), legend(), timeline(start, end && end.record, calls)),
    el('section', {}, el('h3', {}, 'Calls'), callsTable(calls)),
    el('section', {}, el('h3', {}, 'Runs it caused'), caused && caused.caused.length ? tree(caused.caused) : el('p', {}, 'none')));
}

/** Intents joined with their results (the ledger's two-record form of a call that left the run). */
function joinCalls(all) {
  const calls = [];
  const open = new Map();
  for (const r of all) {
    if (r.type === 'call') calls.push({ ...r });
    else if (r.type === 'intent') { const c = { ...r, outcome: undefined, durationUs: undefined }; open.set(r.seq, c); calls.push(c); }
    else if (r.type === 'result' && open.has(r.intent)) Object.assign(open.get(r.intent), { decision: r.decision, rule: r.rule, outcome: r.outcome, durationUs: r.durationUs, approval: r.approval });
  }
  return calls;
}

function legend() {
  return el('p', { class: 'legend' }, ['allow', 'deny', 'limit', 'invalid', 'ask'].map((d) => el('span', {}, badge(d))), el('span', {}, badge('unknown'), ' outcome unknown'), el('span', {}, el('span', { class: 'badge wait' }, 'wait'), ' approval wait'));
}

function timeline(start, end, calls) {
  const t0 = Date.parse(start.at);
  const totalMs = Math.max(1, end ? end.durationUs / 1000 : Math.max(1, ...calls.map((c) => Date.parse(c.at) - t0 + (c.durationUs || 0) / 1000)));
  const width = 900, left = 260, row = 18;
  const x = (ms) => left + (Math.max(0, ms) / totalMs) * (width - left - 10);
  const bars = calls.map((c, i) => {
    const at = Date.parse(c.at) - t0;
    const ms = (c.durationUs || 0) / 1000;
    const unknown = c.outcome === undefined;
    const cls = unknown ? 'unknown' : c.decision;
    const label = c.call.replace(/^[^/]*\//, '').replace(/@[^#]*#/, '.') + (c.hop ? ' (hop ' + c.hop + ')' : '');
    const outcome = unknown ? 'outcome unknown' : 'ok' in c.outcome ? 'ok' : c.outcome.err.kind + ': ' + c.outcome.err.message;
    const wait = c.approval ? c.approval.waitedMs : 0;
    return svg('g', { class: 'call', 'data-seq': c.seq, 'data-decision': cls },
      svg('title', {}, 'seq ' + c.seq + ' ' + label + ' · ' + c.decision + ' (' + c.rule + ') · ' + outcome + (wait ? ' · waited ' + wait + ' ms for ' + c.approval.by : '')),
      svg('text', { x: 4, y: 14 + i * row }, (c.decision === 'allow' ? '' : '✗ ') + label),
      wait ? svg('rect', { class: 'wait', x: x(at), y: 4 + i * row, width: Math.max(2, x(at + wait) - x(at)), height: 12 }) : null,
      svg('rect', { class: cls, x: x(at + wait), y: 4 + i * row, width: Math.max(3, x(at + wait + ms) - x(at + wait)), height: 12 }));
  });
  return svg('svg', { class: 'timeline', width, height: Math.max(2, calls.length) * row + 24, viewBox: '0 0 ' + width + ' ' + (Math.max(2, calls.length) * row + 24) },
    bars, svg('text', { x: left, y: calls.length * row + 18 }, '0 ms'), svg('text', { x: width - 80, y: calls.length * row + 18 }, totalMs.toFixed(2) + ' ms'));
}

function callsTable(calls) {
  return el('table', { id: 'calls' }, el('tr', {}, ...['seq', 'call', 'arguments', 'decision', 'rule', 'µs', 'result'].map((h) => el('th', {}, h))),
    calls.map((c) => el('tr', {},
      el('td', {}, String(c.seq)),
      el('td', { class: 'mono' }, c.call.replace(/^[^/]*\//, '')),
      el('td', { class: 'mono' }, (c.args || []).map(captured).join(', ')),
      el('td', {}, badge(c.outcome === undefined ? 'unknown' : c.decision)),
      el('td', { class: 'mono' }, c.rule),
      el('td', {}, c.durationUs === undefined ? '' : String(c.durationUs)),
      el('td', { class: 'mono' }, c.outcome === undefined ? 'outcome unknown' : 'ok' in c.outcome ? captured(c.outcome.ok) : c.outcome.err.kind + ': ' + c.outcome.err.message))));
}

function tree(nodes) {
  return el('ul', { class: 'tree' }, nodes.map((n) => el('li', {}, link('#/run/' + n.run, n.run), ' ', n.component, ' ', badge(n.outcome), n.caused.length ? tree(n.caused) : null)));
}

async function liveView() {
  const list = el('table', { id: 'live' }, el('tr', {}, ...['record', 'run', 'what'].map((h) => el('th', {}, h))));
  main.replaceChildren(el('section', {}, el('h2', {}, 'Live'), el('p', {}, 'New runs and events as they are committed.'), list));
  follow((records) => {
    for (const row of records) {
      const r = JSON.parse(row.body);
      const what = r.type === 'run-start' ? 'started ' + r.component.name + (r.cause ? ' (' + r.cause.kind + ')' : '') : r.type === 'run-end' ? 'ended ' + r.outcome : r.call && r.call.endsWith('#emit') ? 'event ' + captured(r.args[0]) + ' ' + captured(r.args[1]) : null;
      if (what) list.rows[0].after(el('tr', { class: 'new' }, el('td', {}, String(row.id)), el('td', { class: 'mono' }, link('#/run/' + r.run, r.run)), el('td', { class: 'mono' }, what)));
    }
  });
}

/** Long-polls the ledger from its current end; stops when the view changes. */
let following = 0;
async function follow(onRecords) {
  const mine = ++following;
  let after = (await api('/v1/ledger?after=0&limit=1&tail=1')).end;
  status.textContent = 'live · ledger row ' + after;
  while (mine === following) {
    try {
      const page = await api('/v1/ledger?after=' + after + '&limit=500&wait=20000');
      if (mine !== following) return;
      if (page.records.length) onRecords(page.records);
      after = page.last;
      status.textContent = 'live · ledger row ' + after;
    } catch (error) {
      status.textContent = 'disconnected: ' + error.message;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function route() {
  if (!token) return login();
  following++;
  const hash = location.hash || '#/';
  try {
    if (hash.startsWith('#/run/')) await runView(decodeURIComponent(hash.slice(6)));
    else if (hash.startsWith('#/runs')) await runsView(hash.includes('?') ? hash.slice(hash.indexOf('?') + 1) : '');
    else if (hash.startsWith('#/live')) await liveView();
    else await agentsView();
  } catch (error) {
    if (error.message !== 'unauthorized') main.replaceChildren(el('p', { class: 'problem' }, String(error.message)));
  }
}
addEventListener('hashchange', route);
route();
`;

const ASSETS: ReadonlyMap<string, { readonly type: string; readonly body: string }> = new Map([
  ['/', { type: 'text/html; charset=utf-8', body: HTML }],
  ['/console/app.js', { type: 'text/javascript; charset=utf-8', body: JS }],
  ['/console/style.css', { type: 'text/css; charset=utf-8', body: CSS }],
]);

/** The console file at `path`, or undefined. */
export function consoleAsset(path: string): { readonly type: string; readonly body: string } | undefined {
  return ASSETS.get(path);
}
