// dynserve dashboard: reads the management API every 2 s and drives deploy, undeploy, delete,
// canary traffic, promote, rollback and a try-it inference. Server strings are only ever set as
// text (never as HTML).
'use strict';

const $ = (id) => document.getElementById(id);

// el('td', {class: 'x', onclick: fn}, 'text' | Node | [...])
function el(tag, attrs = {}, children = []) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of [].concat(children)) {
    node.append(c instanceof Node ? c : document.createTextNode(c === null ? '' : String(c)));
  }
  return node;
}

function showError(message) {
  $('alert-text').textContent = message;
  $('alert').hidden = false;
}
$('alert-close').addEventListener('click', () => { $('alert').hidden = true; });

// One request; resolves to the parsed JSON body, or throws with the server's {"error"} text.
async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!resp.ok) throw new Error((data && data.error) || `${method} ${path}: HTTP ${resp.status}`);
  return data;
}

// Run an action from a button, then refresh; errors go to the alert area.
async function act(fn) {
  try {
    await fn();
    $('alert').hidden = true;
  } catch (e) {
    showError(e.message);
  }
  await refresh();
}

const enc = encodeURIComponent;
const fmt = (x) => (typeof x === 'number' ? (Number.isInteger(x) ? String(x) : x.toFixed(3)) : '');

function renderModels(models, deployed) {
  const body = $('models-body');
  body.replaceChildren();
  const byVersion = (a, b) => a.localeCompare(b, undefined, { numeric: true });
  for (const m of models) {
    for (const v of [...m.versions].sort(byVersion)) {
      const key = `${m.name}/${v}`;
      const endpoint = el('input', { 'aria-label': `endpoint name for ${key}`, size: 10 });
      const live = deployed.has(key);
      body.append(el('tr', { 'data-testid': `model-${key}` }, [
        el('td', {}, m.name), el('td', {}, v), el('td', {}, endpoint),
        el('td', {}, [
          el('button', {
            type: 'button', 'data-testid': `deploy-${key}`, disabled: live ? '' : null,
            onclick: () => act(() => {
              const req = { model_name: m.name, version: v };
              if (endpoint.value) req.endpoint_name = endpoint.value;
              return api('POST', '/deployments/deploy', req);
            }),
          }, 'Deploy'),
          el('button', {
            type: 'button', class: 'danger', 'data-testid': `delete-${key}`,
            onclick: () => act(() => api('DELETE', `/models/${enc(m.name)}/versions/${enc(v)}`)),
          }, 'Delete'),
        ]),
      ]));
    }
  }
}

function renderDeployments(deployments) {
  const body = $('deployments-body');
  body.replaceChildren();
  for (const d of deployments) {
    const key = `${d.model_name}/${d.version}`;
    const status = el('span', { class: `pill ${d.status}` }, d.status);
    body.append(el('tr', { 'data-testid': `deployment-${key}` }, [
      el('td', {}, d.model_name), el('td', {}, d.version), el('td', {}, d.endpoint_name || ''),
      el('td', {}, d.reason ? [status, ' ', el('small', {}, d.reason)] : status),
      el('td', {}, d.deployed_at),
      el('td', {}, el('button', {
        type: 'button', 'data-testid': `undeploy-${key}`,
        onclick: () => act(() => api('POST', '/deployments/undeploy',
          { model_name: d.model_name, version: d.version })),
      }, 'Undeploy')),
    ]));
  }
}

// One panel per model with a live version: weights form, promote, rollback, guard state.
function renderCanary(deployments, traffic) {
  const root = $('canary');
  root.replaceChildren();
  const byModel = new Map();
  for (const d of deployments) {
    if (d.status !== 'active') continue;
    if (!byModel.has(d.model_name)) byModel.set(d.model_name, []);
    byModel.get(d.model_name).push(d.version);
  }
  for (const [model, versions] of byModel) {
    const split = traffic.find((t) => t.model_name === model);
    const inputs = versions.map((v) => el('input', {
      type: 'number', min: 0, max: 100, size: 4, 'aria-label': `weight of ${model} version ${v}`,
      'data-testid': `weight-${model}/${v}`,
      value: split && split.weights ? (split.weights[v] ?? 0) : '',
    }));
    const current = split && split.weights
      ? Object.entries(split.weights).map(([v, w]) => `v${v}: ${w}%`).join(', ')
      : 'no split (newest version gets all traffic)';
    const guard = split && split.guard
      ? `guard ${split.guard.state}${split.guard.reason ? ': ' + split.guard.reason : ''}` : '';
    const promoteTo = el('select', { 'aria-label': `promote ${model} to` },
      versions.map((v) => el('option', { value: v }, `v${v}`)));
    root.append(el('div', { class: 'card', 'data-testid': `canary-${model}` }, [
      el('h3', {}, model),
      el('p', { 'data-testid': `split-${model}` }, current),
      guard ? el('p', { class: 'guard', 'data-testid': `guard-${model}` }, guard) : '',
      el('div', {}, versions.flatMap((v, i) => [el('label', {}, `v${v}`), inputs[i]])),
      el('button', {
        type: 'button', 'data-testid': `set-traffic-${model}`,
        onclick: () => act(() => {
          const weights = {};
          versions.forEach((v, i) => { weights[v] = Number(inputs[i].value || 0); });
          return api('PUT', `/deployments/${enc(model)}/traffic`, weights);
        }),
      }, 'Set split'),
      promoteTo,
      el('button', {
        type: 'button', 'data-testid': `promote-${model}`,
        onclick: () => act(() => api('POST', `/deployments/${enc(model)}/promote`,
          { version: promoteTo.value })),
      }, 'Promote'),
      el('button', {
        type: 'button', 'data-testid': `rollback-${model}`,
        onclick: () => act(() => api('POST', `/deployments/${enc(model)}/rollback`)),
      }, 'Rollback'),
    ]));
  }
  if (byModel.size === 0) root.append(el('p', {}, 'Deploy a version to split its traffic.'));
}

function renderStats(stats) {
  const body = $('stats-body');
  body.replaceChildren();
  for (const s of stats) {
    body.append(el('tr', { 'data-testid': `stats-${s.model_name}/${s.version}` },
      [s.model_name, s.version, s.request_count, s.error_count, fmt(s.avg_latency_ms),
        fmt(s.p50_ms), fmt(s.p95_ms), fmt(s.p99_ms), s.in_flight,
        s.traffic_weight === undefined ? '' : `${s.traffic_weight}%`].map((c) => el('td', {}, c))));
  }
}

function renderEvents(events) {
  $('events').replaceChildren(...events.map((e) => el('li', {},
    `${e.at} ${e.kind} ${e.model_name}${e.version ? ' v' + e.version : ''}` +
    (e.detail && e.detail.reason ? ` — ${e.detail.reason}` : ''))));
}

// Keep the try-it target list in step with the live versions, prefilling a valid request.
async function renderTryTargets(deployments) {
  const select = $('try-target');
  const live = deployments.filter((d) => d.status === 'active').map((d) => `${d.model_name}/${d.version}`);
  const old = [...select.options].map((o) => o.value);
  if (old.join() === live.join()) return;
  const keep = select.value;
  select.replaceChildren(...live.map((k) => el('option', { value: k }, k)));
  if (live.includes(keep)) select.value = keep;
  else await prefillRequest();
}

async function prefillRequest() {
  const [model, version] = ($('try-target').value || '/').split('/');
  if (!model) return;
  try {
    const meta = await api('GET', `/v2/models/${enc(model)}/versions/${enc(version)}`);
    const inputs = (meta.inputs || []).map((i) => {
      const shape = i.shape.map((d, k) => (d >= 0 ? d : (k === 0 ? 2 : 1)));
      const count = shape.reduce((a, b) => a * b, 1);
      return { name: i.name, shape, datatype: i.datatype,
        data: Array.from({ length: count }, (_, k) => k + 1) };
    });
    if (inputs.length === 0) {
      inputs.push({ name: 'x', shape: [2], datatype: 'FP32', data: [1, 2] });
    }
    $('try-body').value = JSON.stringify({ inputs });
  } catch (e) {
    showError(e.message);
  }
}
$('try-target').addEventListener('change', prefillRequest);

$('try-send').addEventListener('click', async () => {
  const [model, version] = $('try-target').value.split('/');
  try {
    const out = await api('POST', `/v2/models/${enc(model)}/versions/${enc(version)}/infer`,
      $('try-body').value);
    $('try-result').textContent = JSON.stringify(out, null, 1);
  } catch (e) {
    $('try-result').textContent = '';
    showError(e.message);
  }
});

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [server, models, deps, stats, events] = await Promise.all([
      api('GET', '/v2'), api('GET', '/models'), api('GET', '/deployments'),
      api('GET', '/models/stats'), api('GET', '/deployments/events?limit=20')]);
    const ready = await fetch('/v2/health/ready').then((r) => r.ok).catch(() => false);
    $('health').textContent = `${server.name} ${server.version} · ${ready ? 'ready' : 'not ready'}`;
    $('health').className = `pill ${ready ? 'active' : 'failed'}`;
    const deployed = new Set(deps.deployments.filter((d) => d.status === 'active')
      .map((d) => `${d.model_name}/${d.version}`));
    renderModels(models.models, deployed);
    renderDeployments(deps.deployments);
    renderCanary(deps.deployments, deps.traffic || []);
    renderStats(stats.stats);
    renderEvents(events.events);
    await renderTryTargets(deps.deployments);
  } catch (e) {
    $('health').textContent = 'unreachable';
    $('health').className = 'pill failed';
  } finally {
    refreshing = false;
  }
}

$('refresh').addEventListener('click', refresh);
refresh();
setInterval(refresh, 2000);
