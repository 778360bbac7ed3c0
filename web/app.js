// dynserve dashboard. Polls the management API every 2 s and updates the page IN PLACE: every row,
// card and chart is keyed (model/version) and built once; a refresh only changes text, attributes
// and the charts' SVG, so what the user types, keyboard focus and text selection survive. A form
// the user is editing (focused or changed and not yet sent) is not overwritten by server values
// until it is sent or its edits are discarded.
// Server strings only ever become DOM text (textContent / text nodes), never HTML.
'use strict';

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const byVersion = (a, b) => String(a).localeCompare(String(b), undefined, { numeric: true });
const REFRESH_MS = 2000;
const TIMEOUT_MS = 8000;
const HISTORY_MS = 15 * 60 * 1000;
const TOKEN_KEY = 'dynserve.token';

// el('td', {class: 'x', onclick: fn}, 'text' | Node | [...]); attributes null/false are left out.
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of [].concat(children)) {
    if (c === null || c === undefined || c === '') continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

// Change text only when it differs, so an unchanged cell keeps the user's text selection.
function setText(node, text) {
  const s = String(text);
  if (node.textContent !== s) node.textContent = s;
}
function setAttr(node, name, value) {
  if (value === null || value === undefined || value === false) {
    if (node.hasAttribute(name)) node.removeAttribute(name);
  } else if (node.getAttribute(name) !== String(value)) node.setAttribute(name, String(value));
}

// Keep parent's children in the order of items, one node per key: existing nodes are updated,
// new ones made, vanished ones removed. A node is only moved when the order really changed.
function reconcile(parent, items, keyOf, make, update) {
  const old = new Map();
  for (const c of [...parent.children]) old.set(c.dataset.key, c);
  let cursor = parent.firstElementChild;
  const seen = new Set();
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let node = old.get(key);
    if (!node) {
      node = make(item);
      node.dataset.key = key;
    }
    update(node, item);
    if (node !== cursor) parent.insertBefore(node, cursor);
    else cursor = cursor.nextElementSibling;
  }
  for (const [key, node] of old) if (!seen.has(key)) node.remove();
}

// ---- messages -------------------------------------------------------------------------------

function showError(message) {
  $('alert-text').textContent = message;
  $('alert').hidden = false;
}
function hideError() { $('alert').hidden = true; }
$('alert-close').addEventListener('click', hideError);

let noticeTimer = null;
function showNotice(message) {
  const n = $('notice');
  n.textContent = message;
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, 5000);
}

// ---- HTTP -----------------------------------------------------------------------------------

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
}

// One request. Never throws: {ok, status, data, ms}; status 0 means the server did not answer.
// body: undefined, a string (sent as is), a Blob/File (sent with contentType) or an object (JSON).
async function request(method, path, body, contentType) {
  const init = { method, headers: {}, cache: 'no-store' };
  const t = token();
  if (t) init.headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) {
    const raw = typeof body === 'string' || body instanceof Blob;
    init.headers['Content-Type'] = contentType || 'application/json';
    init.body = raw ? body : JSON.stringify(body);
  }
  if (AbortSignal.timeout) init.signal = AbortSignal.timeout(body instanceof Blob ? 10 * TIMEOUT_MS : TIMEOUT_MS);
  const t0 = performance.now();
  try {
    const resp = await fetch(path, init);
    const text = await resp.text();
    let data;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text.trim() || `HTTP ${resp.status}` }; }
    return { ok: resp.ok, status: resp.status, statusText: resp.statusText, data, ms: performance.now() - t0,
      token: t };
  } catch (e) {
    return { ok: false, status: 0, statusText: '', data: { error: 'server unreachable' }, ms: performance.now() - t0 };
  }
}

const errorText = (r, method, path) =>
  (r.data && typeof r.data.error === 'string' && r.data.error) || `${method} ${path}: HTTP ${r.status}`;

// Resolves to the parsed body; throws with the server's {"error"} text.
async function api(method, path, body, contentType) {
  const r = await request(method, path, body, contentType);
  if (r.status === 401) needSignIn(errorText(r, method, path), r);
  if (!r.ok) throw new Error(errorText(r, method, path));
  return r.data;
}

// Run a user action: a success notice or the server's error, then refresh at once.
// Resolves to true when the action succeeded.
async function act(button, fn, success) {
  if (button) button.setAttribute('aria-busy', 'true');
  let ok = false;
  try {
    const out = await fn();
    hideError();
    if (success) showNotice(typeof success === 'function' ? success(out) : success);
    ok = true;
  } catch (e) {
    showError(e.message);
  } finally {
    if (button) button.removeAttribute('aria-busy');
  }
  await refresh();
  return ok;
}

// ---- confirmation ----------------------------------------------------------------------------

// A modal that names what goes away; resolves to true when the user confirms.
function confirmAction(title, lines, okLabel) {
  const dialog = $('confirm');
  setText($('confirm-title'), title);
  $('confirm-text').replaceChildren(...lines.map((l) => el('p', {}, l)));
  setText($('confirm-ok'), okLabel);
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

// ---- sign-in and roles -----------------------------------------------------------------------

const RANK = { inference: 0, viewer: 1, deployer: 2, admin: 3 };
const who = { known: false, auth: false, name: null, role: 'admin' };
const WHAT = { deployer: 'deploy, undeploy and change traffic', admin: 'register, upload and delete' };

const allowed = (need) => !need || (RANK[who.role] ?? -1) >= RANK[need];

// A control's state: disabled when the role may not use it (reason: the role) or when
// data-why holds a reason of its own (an invalid form, already deployed, ...); the reason
// is the tooltip and the accessible description's first words.
function gate(node) {
  const need = node.dataset.need;
  const reason = need && !allowed(need) ? `needs the ${need} role (you are ${who.role})` : (node.dataset.why || '');
  if (node.disabled !== Boolean(reason)) node.disabled = Boolean(reason);
  setAttr(node, 'title', reason || null);
}
function gateAll(root = document) { root.querySelectorAll('[data-need], [data-why]').forEach(gate); }
function setWhy(node, reason) {
  if (reason) node.dataset.why = reason; else delete node.dataset.why;
  gate(node);
}

function renderWho() {
  const signedIn = Boolean(token());
  $('signin-form').hidden = signedIn || !who.auth;
  $('signout').hidden = !signedIn;
  let text = '';
  if (!who.known) text = '';
  else if (!who.auth) text = 'auth off (everything allowed on loopback)';
  else if (who.name || signedIn) text = `signed in as ${who.name || 'token'} (${who.role})`;
  else text = 'not signed in';
  setText($('whoami'), text);
  const denied = Object.keys(WHAT).filter((need) => !allowed(need)).map((need) => WHAT[need]);
  $('role-note').hidden = denied.length === 0 || !who.known;
  setText($('role-note'), denied.length
    ? `Your role (${who.role}) may not ${denied.join(' or ')}: those controls are disabled.` : '');
  gateAll();
}

async function loadWho() {
  const r = await request('GET', '/auth/whoami');
  if (r.status === 404) Object.assign(who, { known: true, auth: false, name: null, role: 'admin' });
  else if (r.ok && r.data) {
    Object.assign(who, { known: true, auth: Boolean(r.data.auth), name: r.data.name || null,
      role: r.data.role in RANK ? r.data.role : 'viewer' });
  } else if (r.status === 401) {
    Object.assign(who, { known: true, auth: true, name: null, role: 'none' });
    if (token()) {
      sessionStorage.removeItem(TOKEN_KEY);
      showError(`sign-in failed: ${errorText(r, 'GET', '/auth/whoami')}`);
    }
  }
  renderWho();
}

function needSignIn(message, r) {
  // A 401 for a token that is no longer this tab's (a refresh that raced sign-in or sign-out)
  // says nothing about the current one.
  if (r && (r.token || null) !== (token() || null)) return;
  if (!who.auth) {
    who.auth = true;
    who.known = true;
    if (!token()) who.role = 'none';
    renderWho();
  }
  if (!token()) showError(`${message} — sign in with an API token`);
}

$('signin-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const t = $('signin-token').value.trim();
  if (!t) return;
  sessionStorage.setItem(TOKEN_KEY, t);
  $('signin-token').value = '';
  hideError();
  await loadWho();
  if (!token()) return; // refused: keep "sign-in failed: ..." instead of refreshing over it
  await refresh();
});
$('signout').addEventListener('click', async () => {
  sessionStorage.removeItem(TOKEN_KEY);
  Object.assign(who, { name: null, role: who.auth ? 'none' : 'admin' });
  showNotice('Signed out: the token was removed from this tab.');
  await loadWho();
  await refresh();
});

// ---- formatting -----------------------------------------------------------------------------

const fmtNum = (x, digits = 2) => (typeof x === 'number' && Number.isFinite(x)
  ? (Number.isInteger(x) ? String(x) : x.toFixed(digits)) : '–');
const fmtMs = (x) => (typeof x === 'number' ? (x < 1 ? x.toFixed(3) : x < 100 ? x.toFixed(2) : x.toFixed(0)) : '–');
function fmtTime(iso, timeOnly) {
  if (!iso) return 'never';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const p2 = (n) => String(n).padStart(2, '0');
  const time = `${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())}`;
  return timeOnly ? time : `${d.getFullYear()}-${p2(d.getMonth() + 1)}-${p2(d.getDate())} ${time}`;
}
function setTime(node, iso, timeOnly) {
  setText(node, fmtTime(iso, timeOnly));
  setAttr(node, 'datetime', iso || null);
}
const splitText = (weights) => Object.keys(weights).sort(byVersion).map((v) => `v${v}: ${weights[v]}%`).join(', ');
function setPill(node, text, kind) {
  setText(node, text);
  const cls = `pill ${kind || text}`;
  if (node.className !== cls) node.className = cls;
}

// JSON with arrays of plain values kept on one line (tensor data stays readable).
function pretty(v, indent = '') {
  if (Array.isArray(v)) {
    if (v.every((x) => x === null || typeof x !== 'object')) return JSON.stringify(v);
    const inner = indent + '  ';
    return `[\n${v.map((x) => inner + pretty(x, inner)).join(',\n')}\n${indent}]`;
  }
  if (v && typeof v === 'object') {
    const inner = indent + '  ';
    const keys = Object.keys(v);
    if (keys.length === 0) return '{}';
    return `{\n${keys.map((k) => `${inner}${JSON.stringify(k)}: ${pretty(v[k], inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(v);
}

// ---- state ----------------------------------------------------------------------------------

const state = {
  models: [], deployments: [], traffic: new Map(), stats: [], events: [], lastOk: 0,
};
const modelHref = (m) => `#/models/${enc(m)}`;
const liveVersions = (model) => state.deployments
  .filter((d) => d.model_name === model && d.status === 'active').map((d) => d.version).sort(byVersion);

// ---- editing: forms the refresh must not overwrite -------------------------------------------

// A form is "being edited" while focus is inside it or it holds changes not yet sent.
const editing = (form) => form.dataset.dirty === '1' || form.contains(document.activeElement);
function trackEdits(form, onChange) {
  const mark = () => { form.dataset.dirty = '1'; if (onChange) onChange(); showPaused(); };
  form.addEventListener('input', mark);
  form.addEventListener('change', mark);
  form.addEventListener('focusin', showPaused);
  form.addEventListener('focusout', () => setTimeout(showPaused, 0));
}
function clean(form) { delete form.dataset.dirty; showPaused(); }

function showPaused() {
  const names = [...document.querySelectorAll('form[data-edit-name]')]
    .filter((f) => f.isConnected && editing(f)).map((f) => f.dataset.editName);
  $('paused').hidden = names.length === 0;
  setText($('paused'), names.length ? `live values paused while you edit: ${names.join(', ')}` : '');
}

// ---- models table ---------------------------------------------------------------------------

function modelRows() {
  const rows = [];
  for (const m of [...state.models].sort((a, b) => a.name.localeCompare(b.name))) {
    [...m.versions].sort(byVersion).forEach((v, i) => rows.push({ model: m.name, version: v, first: i === 0 }));
  }
  return rows;
}

function makeModelRow({ model, version }) {
  const key = `${model}/${version}`;
  const endpoint = el('input', {
    'data-testid': `endpoint-${key}`, 'aria-label': `endpoint name for ${model} version ${version}`,
    placeholder: 'optional', class: 'endpoint', autocomplete: 'off',
  });
  const deploy = el('button', {
    type: 'button', class: 'deploy', 'data-testid': `deploy-${key}`, 'data-need': 'deployer',
    'aria-label': `Deploy ${model} version ${version}`,
  }, 'Deploy');
  deploy.addEventListener('click', () => act(deploy, () => {
    const body = { model_name: model, version };
    if (endpoint.value.trim()) body.endpoint_name = endpoint.value.trim();
    return api('POST', '/deployments/deploy', body);
  }, (d) => { endpoint.value = ''; return `Deployed ${model} v${version}${d && d.endpoint_name ? ` as ${d.endpoint_name}` : ''}`; }));
  const del = el('button', {
    type: 'button', class: 'danger', 'data-testid': `delete-${key}`, 'data-need': 'admin',
    'aria-label': `Delete ${model} version ${version}`,
  }, 'Delete');
  del.addEventListener('click', async () => {
    const deployed = state.deployments.some((d) => d.model_name === model && d.version === version);
    const others = (state.models.find((m) => m.name === model) || { versions: [] }).versions.length - 1;
    const ok = await confirmAction(`Delete ${model} version ${version}?`, [
      `This unregisters ${model} version ${version}: it leaves the model list and can no longer be deployed.`,
      others > 0 ? `${model} keeps its ${others} other version${others > 1 ? 's' : ''}.`
        : `It is ${model}'s only version, so the model goes away too.`,
      deployed ? 'It is deployed right now: the server will refuse until it is undeployed.' : '',
    ].filter(Boolean), `Delete ${model} v${version}`);
    if (ok) await act(del, () => api('DELETE', `/models/${enc(model)}/versions/${enc(version)}`), `Deleted ${model} v${version}`);
  });
  const link = el('a', { href: modelHref(model), 'data-testid': `model-link-${key}` }, model);
  return el('tr', { 'data-testid': `model-${key}` }, [
    el('th', { scope: 'row', 'data-label': 'Model' }, link),
    el('td', { 'data-label': 'Version' }, `v${version}`),
    el('td', { 'data-label': 'State' }, el('span', { class: 'pill', 'data-testid': `state-${key}` })),
    el('td', { 'data-label': 'Endpoint name', class: 'ep' }, [endpoint, el('span', { class: 'muted ep-live' })]),
    el('td', { class: 'actions' }, [deploy, del]),
  ]);
}

function versionState(model, version) {
  const d = state.deployments.find((x) => x.model_name === model && x.version === version);
  return d ? d.status : 'registered';
}

function updateModelRow(row, { model, version, first }) {
  row.classList.toggle('first', first);
  row.querySelector('th a').classList.toggle('repeat', !first);
  const st = versionState(model, version);
  setPill(row.querySelector('[data-testid^="state-"]'), st);
  const d = state.deployments.find((x) => x.model_name === model && x.version === version);
  const input = row.querySelector('input.endpoint');
  input.hidden = Boolean(d);
  setText(row.querySelector('.ep-live'), d ? (d.endpoint_name || '—') : '');
  setWhy(row.querySelector('button.deploy'), d ? 'already deployed' : '');
}

function renderModels() {
  const rows = modelRows();
  reconcile($('models-body'), rows, (r) => `${r.model}/${r.version}`, makeModelRow, updateModelRow);
  $('models-empty').hidden = rows.length > 0;
}

// ---- deployments table -----------------------------------------------------------------------

function makeDeploymentRow(d) {
  const key = `${d.model_name}/${d.version}`;
  const undeploy = el('button', {
    type: 'button', 'data-testid': `undeploy-${key}`, 'data-need': 'deployer',
    'aria-label': `Undeploy ${d.model_name} version ${d.version}`,
  }, 'Undeploy');
  undeploy.addEventListener('click', async () => {
    const cur = state.deployments.find((x) => x.model_name === d.model_name && x.version === d.version) || d;
    const t = state.traffic.get(d.model_name);
    const w = t && t.weights ? t.weights[d.version] : undefined;
    const lines = cur.status === 'failed'
      ? [`${d.model_name} version ${d.version} failed to load; this clears its failed record.`]
      : [`The route /v2/models/${d.model_name}/versions/${d.version}/infer goes away once requests in flight finish.`,
        cur.endpoint_name ? `So does its endpoint /predict/${cur.endpoint_name}.` : '',
        w ? `Its ${w}% of ${d.model_name}'s traffic moves to the other deployed versions.` : '',
        'The version stays registered and can be deployed again.'];
    const ok = await confirmAction(`Undeploy ${d.model_name} version ${d.version}?`, lines.filter(Boolean),
      `Undeploy ${d.model_name} v${d.version}`);
    if (ok) {
      await act(undeploy, () => api('POST', '/deployments/undeploy', { model_name: d.model_name, version: d.version }),
        `Undeployed ${d.model_name} v${d.version}`);
    }
  });
  return el('tr', { 'data-testid': `deployment-${key}` }, [
    el('th', { scope: 'row', 'data-label': 'Model' }, el('a', { href: modelHref(d.model_name) }, d.model_name)),
    el('td', { 'data-label': 'Version' }, `v${d.version}`),
    el('td', { 'data-label': 'Endpoint' }, el('code', { class: 'ep' })),
    el('td', { 'data-label': 'Status', 'data-testid': `status-${key}` }, [el('span', { class: 'pill' }),
      el('div', { class: 'reason', 'data-testid': `reason-${key}`, hidden: true })]),
    el('td', { 'data-label': 'Deployed at' }, el('time')),
    el('td', { class: 'actions' }, undeploy),
  ]);
}

function updateDeploymentRow(row, d) {
  row.classList.toggle('failed', d.status === 'failed');
  setText(row.querySelector('code.ep'), d.endpoint_name || '—');
  setPill(row.querySelector('.pill'), d.status);
  const reason = row.querySelector('.reason');
  reason.hidden = !d.reason;
  setText(reason, d.reason || '');
  setTime(row.querySelector('time'), d.deployed_at);
}

function renderDeployments() {
  const sorted = [...state.deployments].sort((a, b) =>
    a.model_name.localeCompare(b.model_name) || byVersion(a.version, b.version));
  reconcile($('deployments-body'), sorted, (d) => `${d.model_name}/${d.version}`, makeDeploymentRow, updateDeploymentRow);
  $('deployments-empty').hidden = sorted.length > 0;
}

// ---- history for the charts (client-side until the server has windowed stats) ---------------

// history: "model/version" -> [{t, rate, errPct, p50, p99}], one sample per poll, 15 min kept.
const history = new Map();
const lastRaw = new Map();
let chartSource = '';

function recordStats(stats, now) {
  for (const s of stats) {
    const key = `${s.model_name}/${s.version}`;
    if (!history.has(key)) history.set(key, []);
    const h = history.get(key);
    const w = s.window && (s.window['1m'] || s.window['5m']);
    let sample;
    if (w) {
      chartSource = 'Rates and percentiles from the server\'s 1-minute window.';
      sample = { t: now, rate: w.request_rate ?? null, errPct: w.error_rate === undefined ? null : 100 * w.error_rate,
        p50: w.p50_ms ?? null, p99: w.p99_ms ?? null };
    } else {
      chartSource = 'Rates are differences of the lifetime counters between polls (every 2 s); latency is the '
        + 'server\'s percentile since it started. History starts when this page was opened.';
      const prev = lastRaw.get(key);
      const err = s.error_5xx ?? s.error_count ?? 0;
      sample = { t: now, rate: null, errPct: null, p50: s.request_count ? s.p50_ms : null, p99: s.request_count ? s.p99_ms : null };
      if (prev && now > prev.t && s.request_count >= prev.req) {
        const dreq = s.request_count - prev.req;
        sample.rate = (dreq * 1000) / (now - prev.t);
        sample.errPct = dreq > 0 ? (100 * Math.max(0, err - prev.err)) / dreq : 0;
      }
      lastRaw.set(key, { t: now, req: s.request_count, err });
    }
    h.push(sample);
    while (h.length && h[0].t < now - HISTORY_MS) h.shift();
  }
}

// ---- canary cards: split form, guard, promote, rollback, charts ------------------------------

const GUARD_FIELDS = [
  ['max_error_rate', 'max 5xx error rate (0–1)', '0.01'],
  ['max_p99_ratio', 'max p99 ratio to baseline (0 = off)', '0.1'],
  ['min_requests', 'min requests', '1'],
  ['window_s', 'window (s, 1–60)', '1'],
];
const CHARTS = [
  ['rate', 'Request rate', 'req/s'],
  ['share', 'Share of traffic, observed vs split', '%'],
  ['errors', 'Server errors (5xx)', '% of requests'],
  ['latency', 'Latency p50 (solid) and p99 (dashed)', 'ms'],
];

function makeCard(model) {
  const id = model.replace(/[^A-Za-z0-9_-]/g, '_');
  const sum = el('output', { 'data-testid': `sum-${model}`, id: `sum-${id}`, 'aria-live': 'polite' });
  const weights = el('div', { class: 'weights' });
  const guardOn = el('input', { type: 'checkbox', id: `g-${id}`, 'data-testid': `guard-on-${model}` });
  const guardBox = el('div', { class: 'row guard-fields' }, GUARD_FIELDS.map(([k, label, step]) =>
    el('span', {}, [el('label', { for: `g-${k}-${id}` }, label), el('input', {
      type: 'number', min: 0, step, class: 'num', id: `g-${k}-${id}`, name: k,
      'data-testid': `guard-${k}-${model}`, placeholder: 'default',
    })])));
  const shadowVersion = el('select', { id: `sh-${id}`, name: 'shadow_version', 'data-testid': `shadow-version-${model}` },
    el('option', { value: '' }, 'none'));
  const shadowPercent = el('input', {
    type: 'number', min: 0, max: 100, step: 1, class: 'num', id: `shp-${id}`, name: 'shadow_percent',
    'data-testid': `shadow-percent-${model}`,
  });
  const submit = el('button', { type: 'submit', 'data-testid': `set-traffic-${model}`, 'data-need': 'deployer' }, 'Set split');
  const discard = el('button', { type: 'button', 'data-testid': `discard-${model}`, hidden: true }, 'Discard edits');
  const form = el('form', {
    'data-testid': `traffic-form-${model}`, 'aria-label': `traffic split and guard of ${model}`,
    'data-edit-name': `split of ${model}`, class: 'split-form',
  }, [
    el('fieldset', {}, [el('legend', {}, 'Traffic split (must sum to 100)'), weights,
      el('p', { class: 'sum-line' }, sum)]),
    el('fieldset', {}, [el('legend', {}, 'Guard: automatic rollback of a failing canary'),
      el('div', { class: 'row' }, [guardOn, el('label', { for: guardOn.id }, 'guard on')]), guardBox]),
    el('fieldset', {}, [el('legend', {}, 'Shadow: copy a share of requests to a version, compare, never wait for it'),
      el('div', { class: 'row' }, [el('label', { for: shadowVersion.id }, 'shadow version'), shadowVersion,
        el('label', { for: shadowPercent.id }, 'copy %'), shadowPercent])]),
    el('div', { class: 'row' }, [submit, discard]),
  ]);
  const card = el('article', { class: 'card', 'data-testid': `canary-${model}`, 'aria-labelledby': `h-card-${id}` });
  const validate = () => {
    const inputs = [...weights.querySelectorAll('input')];
    const bad = inputs.filter((i) => i.value === '' || !Number.isInteger(Number(i.value)) || Number(i.value) < 0 || Number(i.value) > 100);
    const s = inputs.reduce((a, i) => a + Number(i.value || 0), 0);
    inputs.forEach((i) => setAttr(i, 'aria-invalid', bad.includes(i) || s !== 100 ? 'true' : null));
    const sp = shadowPercent.value;
    const shadowBad = shadowVersion.value !== '' && (sp === '' || !Number.isInteger(Number(sp)) || Number(sp) < 0 || Number(sp) > 100);
    setAttr(shadowPercent, 'aria-invalid', shadowBad ? 'true' : null);
    shadowPercent.disabled = shadowVersion.value === '';
    const why = bad.length ? 'each weight must be a whole number 0–100' : s !== 100 ? `weights sum to ${s}, not 100`
      : shadowBad ? 'the shadow copy % must be a whole number 0–100' : '';
    setText(sum, `sum ${s}%${why ? ` — ${why}` : ' ✓'}`);
    sum.className = why ? 'bad' : 'ok';
    setWhy(submit, why);
    guardBox.hidden = !guardOn.checked;
  };
  trackEdits(form, () => { discard.hidden = false; validate(); });
  discard.addEventListener('click', () => { clean(form); discard.hidden = true; updateCard(card, model); });
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    validate();
    if (submit.disabled) return;
    const w = {};
    weights.querySelectorAll('input').forEach((i) => { w[i.dataset.version] = Number(i.value); });
    // A PUT without "shadow" ends the shadow: the form always says what it wants.
    let body = w;
    if (guardOn.checked || shadowVersion.value !== '') {
      body = { weights: w };
      if (guardOn.checked) {
        const g = {};
        guardBox.querySelectorAll('input').forEach((i) => { if (i.value !== '') g[i.name] = Number(i.value); });
        body.guard = g;
      }
      if (shadowVersion.value !== '') body.shadow = { version: shadowVersion.value, percent: Number(shadowPercent.value) };
    }
    act(submit, () => api('PUT', `/deployments/${enc(model)}/traffic`, body), (out) => {
      clean(form);
      discard.hidden = true;
      return `Traffic of ${model}: ${out && out.weights ? splitText(out.weights) : 'set'}${out && out.guard ? ', guard armed' : ''}`
        + `${out && out.shadow ? `, shadow v${out.shadow.version} ${out.shadow.percent}%` : ''}`;
    });
  });

  const target = el('select', { id: `p-${id}`, class: 'promote-target', 'data-testid': `promote-target-${model}` });
  const promoteForm = el('form', { class: 'row', 'data-edit-name': `promotion of ${model}`, 'aria-label': `promote or roll back ${model}` });
  const promote = el('button', { type: 'submit', 'data-testid': `promote-${model}`, 'data-need': 'deployer' }, 'Promote');
  const rollback = el('button', { type: 'button', 'data-testid': `rollback-${model}`, 'data-need': 'deployer' }, 'Roll back to the previous split');
  trackEdits(promoteForm);
  promoteForm.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = target.value;
    act(promote, () => api('POST', `/deployments/${enc(model)}/promote`, { version: v }), () => {
      clean(promoteForm);
      return `Promoted ${model} v${v}: it takes all traffic`;
    });
  });
  rollback.addEventListener('click', () => act(rollback, () => api('POST', `/deployments/${enc(model)}/rollback`),
    (out) => `Rolled back ${model}${out && out.weights ? ` to ${splitText(out.weights)}` : ''}`));
  promoteForm.append(el('label', { for: target.id }, 'Send all traffic to'), target, promote, rollback);

  const charts = el('div', { class: 'charts' }, CHARTS.map(([k]) => el('figure', {
    class: 'chart-box', 'data-testid': `chart-${k}-${model}`, 'data-chart': k,
  })));
  const now = el('table', { class: 'now', 'data-testid': `now-${model}` }, [
    el('caption', { class: 'sr-only' }, `${model} per version now`),
    el('thead', {}, el('tr', {}, ['Version', 'Weight', 'Requests', '4xx', '5xx', 'p50 ms', 'p99 ms', 'In flight']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody'),
  ]);

  card.append(
    el('div', { class: 'card-head' }, [
      el('h3', { id: `h-card-${id}` }, el('a', { href: modelHref(model) }, model)),
      el('div', { class: 'bar', 'aria-hidden': 'true' }),
      el('p', { 'data-testid': `split-${model}`, class: 'split-text' }),
      el('p', { 'data-testid': `guard-${model}`, class: 'guard-text' }),
    ]),
    charts,
    el('div', { class: 'card-body' }, [now, el('div', { class: 'controls' }, [form, promoteForm])]),
  );
  card.validate = validate;
  return card;
}

function updateWeights(card, model, versions, weights) {
  const form = card.querySelector('form.split-form');
  const box = form.querySelector('.weights');
  const id = model.replace(/[^A-Za-z0-9_-]/g, '_');
  const keepEdits = editing(form);
  reconcile(box, versions, (v) => v, (v) => {
    const input = el('input', {
      type: 'number', min: 0, max: 100, step: 1, class: 'num', id: `w-${id}-${v}`, inputmode: 'numeric',
      'data-testid': `weight-${model}/${v}`, 'data-version': v, 'aria-describedby': `sum-${id}`,
    });
    return el('span', { class: 'weight' }, [el('label', { for: input.id }, `v${v} %`), input]);
  }, (span, v) => {
    const input = span.querySelector('input');
    const server = String(weights ? (weights[v] ?? 0) : (v === versions[versions.length - 1] ? 100 : 0));
    if (!keepEdits && input.value !== server) input.value = server;
  });
}

function updateShadowFields(card, versions, shadow) {
  const form = card.querySelector('form.split-form');
  const select = form.querySelector('select[name=shadow_version]');
  const opts = [['', 'none'], ...versions.map((v) => [v, `v${v}`])];
  reconcile(select, opts, (o) => `o${o[0]}`, (o) => el('option', { value: o[0] }, o[1]), () => {});
  // the user's choice stands while editing, "none" included, unless its version went away
  if (editing(form) && (select.value === '' || versions.includes(select.value))) return;
  select.value = shadow && versions.includes(shadow.version) ? shadow.version : '';
  const input = form.querySelector('input[name=shadow_percent]');
  const p = shadow ? String(shadow.percent) : '';
  if (input.value !== p) input.value = p;
}

function updateGuardFields(card, guard) {
  const form = card.querySelector('form.split-form');
  if (editing(form)) return;
  form.querySelector('input[type=checkbox]').checked = Boolean(guard);
  for (const input of form.querySelectorAll('.guard-fields input')) {
    const v = guard ? String(guard[input.name]) : '';
    if (input.value !== v) input.value = v;
  }
}

function updateCard(card, model) {
  const versions = liveVersions(model);
  const t = state.traffic.get(model);
  const weights = t && t.weights;
  const guard = t && t.guard;
  const newest = versions[versions.length - 1];
  const shown = weights || { [newest]: 100 };

  const bar = card.querySelector('.bar');
  const segs = Object.keys(shown).sort(byVersion).filter((v) => shown[v] > 0);
  reconcile(bar, segs, (v) => v, (v) => el('span', { class: 'seg' }), (seg, v) => {
    seg.className = `seg c${versions.indexOf(v) % 4}`;
    seg.style.flexGrow = String(shown[v]);
    setText(seg, `v${v} ${shown[v]}%`);
  });
  const shadow = t && t.shadow;
  setText(card.querySelector('.split-text'), (weights ? `Split: ${splitText(weights)}`
    : `No split set: v${newest} (the newest) takes all traffic`)
    + (shadow ? ` · shadow: v${shadow.version} gets a copy of ${shadow.percent}%` : ''));
  const g = card.querySelector('.guard-text');
  if (!guard) setText(g, 'Guard: off');
  else {
    const params = `max 5xx rate ${guard.max_error_rate}, max p99 ratio ${guard.max_p99_ratio || 'off'}, `
      + `min ${guard.min_requests} requests, ${guard.window_s} s window`;
    setText(g, `Guard: ${guard.state}${guard.state === 'tripped' ? ' ⚠' : ''} — ${params}${guard.reason ? ` — ${guard.reason}` : ''}`);
  }
  g.classList.toggle('bad', Boolean(guard && guard.state === 'tripped'));

  updateWeights(card, model, versions, weights);
  updateGuardFields(card, guard);
  updateShadowFields(card, versions, shadow);
  card.validate();

  const target = card.querySelector('select.promote-target');
  const promoteForm = target.form;
  reconcile(target, versions, (v) => v, (v) => el('option', { value: v }, `v${v}`), () => {});
  if (!editing(promoteForm) || !versions.includes(target.value)) target.value = newest;

  const rows = versions.map((v) => ({ v, s: state.stats.find((x) => x.model_name === model && x.version === v) || {} }));
  reconcile(card.querySelector('table.now tbody'), rows, (r) => r.v, (r) => el('tr', { 'data-testid': `stats-${model}/${r.v}` },
    [el('th', { scope: 'row' }, `v${r.v}`), ...Array.from({ length: 7 }, () => el('td'))]), (tr, { v, s }) => {
    const cells = tr.querySelectorAll('td');
    const w = weights ? weights[v] : (v === newest ? 100 : 0);
    [`${w ?? 0}%`, fmtNum(s.request_count), fmtNum(s.error_4xx), fmtNum(s.error_5xx), fmtMs(s.p50_ms),
      fmtMs(s.p99_ms), fmtNum(s.in_flight)].forEach((text, i) => setText(cells[i], text));
    cells[1].dataset.testid = `requests-${model}/${v}`;
  });
  drawCharts(card, model, versions, weights, guard);
}

const EVENT_MARKS = {
  deploy: 'D', undeploy: 'U', promote: 'P', rollback: 'R', guard_rollback: 'G', traffic: 'S', failed: 'F', deploy_failed: 'F',
};
function eventKind(e) { return e.kind === 'traffic' && e.detail && e.detail.reason === 'promote' ? 'promote' : e.kind; }

function chartSpan() { return Number($('span').value) * 1000; }

function drawCharts(card, model, versions, weights, guard) {
  const t1 = Date.now();
  const t0 = t1 - chartSpan();
  const hist = versions.map((v) => ({ v, h: (history.get(`${model}/${v}`) || []).filter((p) => p.t >= t0) }));
  const marks = state.events.filter((e) => e.model_name === model && EVENT_MARKS[eventKind(e)])
    .map((e) => ({ t: Date.parse(e.at), letter: EVENT_MARKS[eventKind(e)], kind: eventKind(e),
      text: `${fmtTime(e.at, true)} ${eventKind(e)}${e.version ? ` v${e.version}` : ''}${describe(e.detail) ? ` — ${describe(e.detail)}` : ''}` }));
  const style = (v) => versions.indexOf(v) % 4;
  const series = (pick, suffix = '', dash = false) => hist.map(({ v, h }) => ({
    label: `v${v}${suffix}`, style: style(v), dash, points: h.map((p) => [p.t, pick(p, h)]),
  }));
  // share: this version's rate over the model's total at the same poll
  const totals = new Map();
  for (const { h } of hist) for (const p of h) if (p.rate !== null) totals.set(p.t, (totals.get(p.t) || 0) + p.rate);
  const share = (p) => (p.rate === null || !totals.get(p.t) ? null : (100 * p.rate) / totals.get(p.t));
  const splitLines = weights ? Object.keys(weights).sort(byVersion).filter((v) => versions.includes(v))
    .map((v) => ({ y: weights[v], label: `split v${v} ${weights[v]}%` })) : [];
  const guardErr = guard ? [{ y: 100 * guard.max_error_rate, label: `guard max ${fmtNum(100 * guard.max_error_rate)}%` }] : [];
  let guardP99 = [];
  if (guard && guard.max_p99_ratio > 0 && weights) {
    const base = Object.keys(weights).sort(byVersion).reduce((b, v) => (weights[v] >= (weights[b] ?? -1) ? v : b), null);
    const bs = state.stats.find((s) => s.model_name === model && s.version === base);
    if (bs && bs.p99_ms > 0) guardP99 = [{ y: bs.p99_ms * guard.max_p99_ratio, label: `guard p99 limit (${guard.max_p99_ratio}× v${base})` }];
  }
  const specs = {
    rate: { series: series((p) => p.rate), fmt: (v) => fmtNum(v, v < 10 ? 1 : 0) },
    share: { series: series(share), hlines: splitLines, yMax: 100, fmt: (v) => `${Math.round(v)}` },
    errors: { series: series((p) => p.errPct), hlines: guardErr, yMax: 100, fmt: (v) => fmtNum(v, 1) },
    latency: { series: [...series((p) => p.p50, ' p50'), ...series((p) => p.p99, ' p99', true)], hlines: guardP99, fmt: fmtMs },
  };
  for (const [k, title, unit] of CHARTS) {
    const fig = card.querySelector(`figure[data-chart="${k}"]`);
    window.drawChart(fig, { title: `${model}: ${title}`, unit, t0, t1, marks, hlines: [], ...specs[k] });
  }
}

function renderCanary() {
  const models = [...new Set(state.deployments.filter((d) => d.status === 'active').map((d) => d.model_name))].sort();
  reconcile($('canary'), models, (m) => m, makeCard, updateCard);
  $('canary-empty').hidden = models.length > 0;
  setText($('chart-source'), chartSource);
  gateAll($('canary'));
}

// ---- events ---------------------------------------------------------------------------------

function describe(detail) {
  const parts = [];
  for (const [k, v] of Object.entries(detail || {})) {
    if (v === null || v === '' || v === undefined || k === 'deployment_id') continue;
    if (k === 'weights' && typeof v === 'object') parts.push(`split ${splitText(v)}`);
    else if (k === 'guard' && typeof v === 'object') parts.push(`guard ${v.state || 'on'}`);
    else if (k === 'reason' && (v === 'traffic' || v === 'promote')) continue;
    else parts.push(`${k.replace(/_/g, ' ')}: ${typeof v === 'object' ? JSON.stringify(v) : v}`);
  }
  return parts.join(' · ');
}

function renderEvents() {
  const list = state.events.slice(0, 25);
  reconcile($('events'), list, (e) => String(e.id), (e) => {
    const kind = eventKind(e);
    return el('li', { 'data-testid': `event-${e.id}`, class: `kind-${kind}` }, [
      el('time', { datetime: e.at, title: e.at }, fmtTime(e.at, true)), ' ',
      el('span', { class: 'kind' }, [EVENT_MARKS[kind] ? el('span', { class: 'letter', 'aria-hidden': 'true' }, EVENT_MARKS[kind]) : null, kind]), ' ',
      el('a', { href: modelHref(e.model_name) }, e.model_name), e.version ? ` v${e.version}` : '',
      describe(e.detail) ? el('span', { class: 'muted' }, ` — ${describe(e.detail)}`) : null,
    ]);
  }, () => {});
  $('events-empty').hidden = list.length > 0;
}

// ---- model page -----------------------------------------------------------------------------

const meta = new Map(); // "model/version/deployed_at" -> metadata (or {error})
const info = new Map(); // "model/version" -> GET /models/<m>/versions/<v> (or null: not served)
let currentModel = null;

function route() {
  const m = /^#\/models\/(.+)$/.exec(location.hash);
  currentModel = m ? decodeURIComponent(m[1]) : null;
  $('view-overview').hidden = Boolean(currentModel);
  $('view-model').hidden = !currentModel;
  if (currentModel) {
    setText($('model-title'), currentModel);
    setText($('model-crumb'), currentModel);
    document.title = `${currentModel} — dynserve`;
    if ($('view-model').dataset.model !== currentModel) { // another model: forget the last try
      $('view-model').dataset.model = currentModel;
      $('try-body').dataset.for = '';
      $('try-body').value = '';
      setText($('try-status'), '');
      $('try-result').textContent = '';
      $('try-outputs').replaceChildren();
    }
    renderModel();
  } else document.title = 'dynserve dashboard';
}
window.addEventListener('hashchange', () => { route(); $('main').focus(); refresh(); });

async function loadMeta(model) {
  const m = state.models.find((x) => x.name === model);
  for (const key of [...info.keys()]) if (key.startsWith(`${model}/`) && !(m && m.versions.includes(key.slice(model.length + 1)))) info.delete(key);
  await Promise.all((m ? m.versions : []).filter((v) => !info.has(`${model}/${v}`)).map(async (v) => {
    const r = await request('GET', `/models/${enc(model)}/versions/${enc(v)}`);
    info.set(`${model}/${v}`, r.ok && r.data ? r.data : null);
  }));
  const live = state.deployments.filter((d) => d.model_name === model && d.status === 'active');
  await Promise.all(live.map(async (d) => {
    const key = `${model}/${d.version}/${d.deployed_at}`;
    if (meta.has(key)) return;
    const path = `/v2/models/${enc(model)}/versions/${enc(d.version)}`;
    const r = await request('GET', path);
    meta.set(key, r.ok ? r.data : { error: errorText(r, 'GET', path) });
  }));
}
const metaOf = (model, version) => {
  const d = state.deployments.find((x) => x.model_name === model && x.version === version && x.status === 'active');
  return d ? meta.get(`${model}/${version}/${d.deployed_at}`) : undefined;
};

function ioTable(caption, list, testid) {
  return el('table', { class: 'io', 'data-testid': testid }, [
    el('caption', {}, caption),
    el('thead', {}, el('tr', {}, ['Name', 'Datatype', 'Shape'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, (list || []).map((io) => el('tr', {}, [el('th', { scope: 'row' }, io.name),
      el('td', {}, io.datatype), el('td', {}, `[${(io.shape || []).join(', ')}]`)]))),
  ]);
}

// What the registry holds for a version: backend or plugin, content address, when, config.
function registration(reg, key) {
  const items = [
    ['Kind', reg.backend ? `backend ${reg.backend}` : 'plugin (.so)'],
    [reg.backend ? 'Artifacts sha256' : 'Plugin sha256', reg.backend ? reg.artifact_sha256 : reg.plugin_sha256],
    ['Registered', reg.created_at ? fmtTime(reg.created_at) : null],
    ['Config', reg.config && Object.keys(reg.config).length ? JSON.stringify(reg.config) : null],
  ].filter(([, v]) => v);
  return el('dl', { class: 'reg', 'data-testid': `registration-${key}` },
    items.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, el('code', {}, v))]));
}

function renderModel() {
  if (!currentModel) return;
  const model = currentModel;
  const m = state.models.find((x) => x.name === model);
  const note = $('model-note');
  note.hidden = Boolean(m) || state.models.length === 0;
  setText(note, m ? '' : `No model named ${model} is registered.`);
  const versions = m ? [...m.versions].sort(byVersion) : [];
  const t = state.traffic.get(model);
  const live = liveVersions(model);
  reconcile($('model-versions-body'), versions, (v) => v, (v) => el('tr', { 'data-testid': `version-${model}/${v}` }, [
    el('th', { scope: 'row', 'data-label': 'Version' }, `v${v}`),
    el('td', { 'data-label': 'State' }, el('span', { class: 'pill' })),
    ...['Endpoint', 'Traffic', 'Requests'].map((l) => el('td', { 'data-label': l })),
    el('td', { 'data-label': 'Deployed at' }, el('time')),
  ]), (tr, v) => {
    const d = state.deployments.find((x) => x.model_name === model && x.version === v);
    const s = state.stats.find((x) => x.model_name === model && x.version === v);
    const cells = tr.querySelectorAll('td');
    setPill(cells[0].firstChild, d ? d.status : 'registered');
    setText(cells[1], d && d.endpoint_name ? d.endpoint_name : '—');
    const w = !live.includes(v) ? null : t && t.weights ? (t.weights[v] ?? 0) : (v === live[live.length - 1] ? 100 : 0);
    setText(cells[2], w === null ? '—' : `${w}%`);
    setText(cells[3], s ? fmtNum(s.request_count) : '—');
    setTime(cells[4].firstChild, d ? d.deployed_at : null);
    if (!d) setText(cells[4].firstChild, '—');
  });

  const blocks = versions.map((v) => ({ v, md: metaOf(model, v), reg: info.get(`${model}/${v}`) || null }));
  const sig = JSON.stringify(blocks);
  const box = $('model-meta');
  if (box.dataset.sig !== sig) { // metadata rarely changes: rebuild this read-only block only then
    box.dataset.sig = sig;
    box.replaceChildren(...blocks.map(({ v, md, reg }) => el('div', { class: 'meta', 'data-testid': `meta-${model}/${v}` }, [
      el('h4', {}, `Version ${v}${md && md.platform ? ` · ${md.platform}` : ''}`),
      reg ? registration(reg, `${model}/${v}`) : null,
      !md ? el('p', { class: 'muted' }, 'Not deployed: the server describes inputs and outputs of deployed versions.')
        : md.error ? el('p', { class: 'note' }, md.error)
          : el('div', { class: 'io-pair' }, [ioTable('Inputs', md.inputs, `inputs-${model}/${v}`),
            ioTable('Outputs', md.outputs, `outputs-${model}/${v}`)]),
    ])));
  }
  renderTryTargets(model, live);
}

// ---- try it ---------------------------------------------------------------------------------

function sample(datatype, k) {
  if (datatype === 'BOOL') return k % 2 === 0;
  if (datatype === 'BYTES') return `text ${k + 1}`;
  return k + 1;
}

function exampleRequest(md) {
  const inputs = (md && Array.isArray(md.inputs) ? md.inputs : []).map((i) => {
    const dims = Array.isArray(i.shape) && i.shape.length ? i.shape : [-1];
    const shape = dims.map((d, k) => (d >= 0 ? d : (k === 0 ? 2 : 1)));
    const datatype = !i.datatype || i.datatype === 'ANY' ? 'FP32' : i.datatype;
    const count = shape.reduce((a, b) => a * b, 1);
    return { name: i.name, shape, datatype, data: Array.from({ length: count }, (_, k) => sample(datatype, k)) };
  });
  if (inputs.length === 0) inputs.push({ name: 'input', shape: [2], datatype: 'FP32', data: [1, 2] });
  return { inputs };
}

const tryPath = (target, suffix) => {
  const [model, version] = [target.slice(0, target.lastIndexOf('/')), target.slice(target.lastIndexOf('/') + 1)];
  return `/v2/models/${enc(model)}${version ? `/versions/${enc(version)}` : ''}${suffix}`;
};

// Fill the request from the target's metadata, unless the user has edited it for this target.
function prefill(force) {
  const target = $('try-target').value;
  const body = $('try-body');
  if (!target || (!force && body.dataset.for === target)) return;
  const [model, version] = [target.slice(0, target.lastIndexOf('/')), target.slice(target.lastIndexOf('/') + 1)];
  const md = metaOf(model, version || liveVersions(model).slice(-1)[0]);
  if (!md || md.error) return;
  body.value = JSON.stringify(exampleRequest(md));
  body.dataset.for = target;
}

function renderTryTargets(model, live) {
  const select = $('try-target');
  const options = live.map((v) => [`${model}/${v}`, `${model} v${v}`]);
  if (live.length) options.push([`${model}/`, `${model} (routed by the traffic split)`]);
  if (options.length === 0) options.push(['', 'nothing deployed']);
  reconcile(select, options, (o) => o[0], (o) => el('option', { value: o[0] }, o[1]), () => {});
  select.disabled = live.length === 0;
  setWhy($('try-send'), live.length ? '' : 'no version of this model is deployed');
  prefill(false);
}

$('try-target').addEventListener('change', () => prefill(true));
$('try-reset').addEventListener('click', () => prefill(true));
$('try-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const target = $('try-target').value;
  if (!target) return;
  const path = tryPath(target, '/infer');
  setText($('try-status'), 'sending…');
  const r = await request('POST', path, $('try-body').value);
  setText($('try-status'), r.status ? `HTTP ${r.status} ${r.statusText} · ${r.ms.toFixed(1)} ms` : 'server unreachable');
  $('try-result').textContent = r.data === null ? '' : pretty(r.data);
  $('try-result').className = r.ok ? '' : 'bad';
  const outs = r.ok && r.data && Array.isArray(r.data.outputs) ? r.data.outputs : [];
  $('try-outputs').replaceChildren(...(outs.length ? [el('table', { class: 'io', 'data-testid': 'try-table' }, [
    el('caption', {}, `Response of ${r.data.model_name || ''} v${r.data.model_version || ''}`),
    el('thead', {}, el('tr', {}, ['Output', 'Datatype', 'Shape', 'Data'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, outs.map((o) => el('tr', {}, [el('th', { scope: 'row' }, o.name), el('td', {}, o.datatype),
      el('td', {}, `[${(o.shape || []).join(', ')}]`), el('td', {}, el('code', {}, JSON.stringify(o.data)))]))),
  ])] : []));
  if (outs.length) $('try-result').parentElement.open = false;
  if (r.ok) hideError(); else showError(errorText(r, 'POST', path));
});
$('try-body').addEventListener('input', () => { $('try-body').dataset.for = $('try-target').value; });

// ---- upload ---------------------------------------------------------------------------------

function uploadType(file) {
  return /\.tar$/i.test(file.name) || file.type === 'application/x-tar' ? 'application/x-tar' : 'application/octet-stream';
}
$('upload-file').addEventListener('change', () => {
  const f = $('upload-file').files[0];
  if (!f) return;
  const m = /^(.*?)(?:\.(so|tar))?$/i.exec(f.name);
  if (!$('upload-model').value && m && m[1]) $('upload-model').value = m[1].replace(/[^A-Za-z0-9_.-]/g, '_');
  setText($('upload-kind'), `${f.name} (${f.size} bytes) will be sent as ${uploadType(f)}`
    + `${uploadType(f) === 'application/x-tar' ? ' (a model archive: config.json + artifacts)' : ' (a plugin)'}.`);
});
$('upload-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = $('upload-form');
  if (!form.reportValidity()) return;
  const model = $('upload-model').value.trim();
  const version = $('upload-version').value.trim();
  const file = $('upload-file').files[0];
  act(form.querySelector('button[type=submit]'),
    () => api('PUT', `/models/${enc(model)}/versions/${enc(version)}`, file, uploadType(file)), () => {
      form.reset();
      return `Registered ${model} v${version} from ${file.name}`;
    });
});

// ---- refresh --------------------------------------------------------------------------------

function note(id, r, what) {
  const p = $(id);
  p.hidden = r.ok;
  setText(p, r.ok ? '' : `${what} unavailable: ${errorText(r, 'GET', what)}${r.status ? ` (HTTP ${r.status})` : ''}`);
}

// One refresh at a time; a call made while one runs gets a fresh one right after it (so an
// action's result is never hidden by a read that started before the action).
let running = null;
let queued = null;
function refresh() {
  if (!running) {
    running = doRefresh().catch((e) => showError(`dashboard: ${e.message}`)).finally(() => { running = null; });
    return running;
  }
  if (!queued) queued = running.then(() => { queued = null; return refresh(); });
  return queued;
}

async function doRefresh() {
  const [server, ready, models, deps, stats, events] = await Promise.all([
    '/v2', '/v2/health/ready', '/models', '/deployments', '/models/stats', '/deployments/events?limit=100',
  ].map((p) => request('GET', p)));
  const health = $('health');
  if (server.status === 0 && ready.status === 0) {
    setPill(health, 'unreachable', 'failed');
    $('main').classList.add('stale');
    return;
  }
  $('main').classList.remove('stale');
  setText($('server-info'), server.ok && server.data ? `${server.data.name} ${server.data.version}` : '');
  setPill(health, ready.ok ? 'ready' : 'not ready', ready.ok ? 'active' : 'failed');
  const refused = [models, deps, stats, events].find((r) => r.status === 401);
  if (refused) needSignIn(errorText(refused, 'GET', '/models'), refused);

  note('models-note', models, '/models');
  note('deployments-note', deps, '/deployments');
  note('events-note', events, '/deployments/events');
  if (models.ok) state.models = models.data.models || [];
  if (deps.ok) {
    state.deployments = deps.data.deployments || [];
    state.traffic = new Map((deps.data.traffic || []).map((t) => [t.model_name, t]));
  }
  if (stats.ok) {
    state.stats = stats.data.stats || [];
    recordStats(state.stats, Date.now());
  }
  if (events.ok) state.events = events.data.events || [];
  state.lastOk = Date.now();
  tick();

  renderModels();
  renderDeployments();
  renderCanary();
  renderEvents();
  if (currentModel) {
    await loadMeta(currentModel);
    renderModel();
  }
  gateAll();
  showPaused();
}

function tick() {
  if (!state.lastOk) return;
  const s = Math.round((Date.now() - state.lastOk) / 1000);
  setText($('updated'), `updated ${s} s ago`);
  setAttr($('updated'), 'title', `last successful refresh ${new Date(state.lastOk).toLocaleTimeString()}`);
}

$('refresh').addEventListener('click', () => refresh());
$('span').addEventListener('change', () => renderCanary());
let resizeTimer = null;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(renderCanary, 150); });

// For tests and tools: the data behind each chart, as drawn.
window.dynserve = {
  chartData(model, chart) {
    const fig = document.querySelector(`[data-testid="chart-${CSS.escape(chart)}-${CSS.escape(model)}"]`);
    return fig && fig.chartSpec ? JSON.parse(JSON.stringify({ ...fig.chartSpec, fmt: undefined })) : null;
  },
};

route();
loadWho().then(refresh);
setInterval(refresh, REFRESH_MS);
setInterval(tick, 1000);
