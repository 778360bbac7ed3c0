// Browser tests for the dashboard: the real server binary on a free loopback port with a temp
// data dir, Debian's Chromium driven by playwright-core, node's test runner. Every step is checked
// in the page and against the server's own API. Tests run in order and share one server and page.
//
// env: DYNSERVE_BIN (default <repo>/build/dynserve), DYNSERVE_WEB_ROOT (default <repo>/web, the
// files under test), CHROMIUM (default /usr/bin/chromium), DYNSERVE_WEB_SHOTS (where screenshots
// go: the 1280 and 800 px views of every run, and the page of any failing step; ctest sets it to
// <build>/test/web-shots).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, unlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const axePath = createRequire(import.meta.url).resolve('axe-core/axe.min.js');

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = resolve(process.env.DYNSERVE_BIN || join(repo, 'build', 'dynserve'));
const webRoot = resolve(process.env.DYNSERVE_WEB_ROOT || join(repo, 'web'));
const Q = 'quadratic_predictor';
const STEP_MS = 30000; // one wait in the page (generous: the test machine may be loaded)
const TEST_MS = 180000; // one test
const T = { timeout: TEST_MS };

const pageErrors = [];
const requests = []; // every request the page made: {url, method, auth}
let server, serverExit, serverLog = '', port, base, browser, page, dataDir, shots;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port: p } = s.address(); s.close(() => ok(p)); });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(fn, what, ms = STEP_MS) {
  const end = Date.now() + ms;
  let last;
  for (;;) {
    try { if (await fn()) return; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(100);
  }
}

// The server's own answer (bounded); {status, body}.
async function call(method, path, body, headers = {}) {
  const init = { method, headers, signal: AbortSignal.timeout(STEP_MS) };
  if (body !== undefined) {
    init.body = Buffer.isBuffer(body) || typeof body === 'string' ? body : JSON.stringify(body);
    if (!Buffer.isBuffer(body)) init.headers = { 'Content-Type': 'application/json', ...headers };
  }
  const r = await fetch(base + path, init);
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}
const get = async (path) => (await call('GET', path)).body;
const weightsOf = async (model) => (await get(`/deployments/${model}/traffic`)).weights;
const text = async (testid) => (await page.getByTestId(testid).innerText()).replace(/\s+/g, ' ').trim();

async function startServer() {
  serverLog = '';
  server = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
    '--web-root', webRoot, '--log-level', 'warn', '--stats-flush-s', '1'],
  { stdio: ['ignore', 'pipe', 'pipe'] });
  const keep = (d) => { serverLog = (serverLog + d).slice(-20000); };
  server.stdout.on('data', keep);
  server.stderr.on('data', keep);
  serverExit = new Promise((ok) => server.once('exit', (code, signal) => ok({ code, signal })));
  let exited = null;
  serverExit.then((e) => { exited = e; });
  await waitFor(async () => {
    if (exited) throw new Error(`server exited early (${JSON.stringify(exited)}): ${serverLog}`);
    return (await fetch(`${base}/v2/health/live`, { signal: AbortSignal.timeout(1000) })).ok;
  }, 'GET /v2/health/live', 20000).catch((e) => { if (!exited) server.kill('SIGKILL'); throw e; });
}

// SIGTERM, then the exit status (SIGKILL after 20 s so nothing hangs).
async function stopServer() {
  const s = server;
  server = null;
  s.kill('SIGTERM');
  const timer = setTimeout(() => s.kill('SIGKILL'), 20000);
  const e = await serverExit;
  clearTimeout(timer);
  return e;
}

async function screenshot(name) {
  const file = join(shots, `${name.replace(/\W+/g, '_')}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: STEP_MS });
  return file;
}

// A test that keeps a screenshot of the page when it fails.
function step(name, fn) {
  test(name, T, async (t) => {
    try {
      await fn(t);
    } catch (e) {
      const file = await screenshot(`FAILED ${name}`).catch(() => null);
      let more = file ? `\n  screenshot: ${file}` : '';
      if (serverLog) more += `\n  server log (tail): ${serverLog.slice(-2000)}`;
      if (more) {
        try { e.message += more; } catch (_) { console.log(`${name}:${more}`); } // some errors' message is read-only
      }
      throw e;
    }
  });
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dynserve-web-data-'));
  shots = process.env.DYNSERVE_WEB_SHOTS || mkdtempSync(join(tmpdir(), 'dynserve-web-shots-'));
  mkdirSync(shots, { recursive: true });
  for (const f of readdirSync(shots)) if (f.endsWith('.png')) unlinkSync(join(shots, f)); // this run's only
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    timeout: 30000,
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  page.on('pageerror', (e) => { pageErrors.push(e.message); serverLog += `\n[page error] ${e.message}`; });
  page.on('request', (r) => { requests.push({ url: r.url(), method: r.method(), auth: r.headers().authorization || null }); });
  await page.goto(base + '/');
}, { timeout: 60000 });

after(async () => {
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer();
  rmSync(dataDir, { recursive: true, force: true });
  if (!process.env.DYNSERVE_WEB_SHOTS) console.log(`screenshots: ${shots}`);
}, { timeout: 30000 });


// ---- helpers over the page --------------------------------------------------------------------

const statsPolls = () => requests.filter((r) => r.url.endsWith('/models/stats')).length;
// Wait until the page has polled the stats `n` more times (one poll per refresh cycle).
async function refreshCycles(n) {
  const start = statsPolls();
  await waitFor(async () => statsPolls() >= start + n, `${n} refresh cycles`, 2 * STEP_MS);
  await sleep(300); // let the last cycle's rendering finish
}
const activeTestId = () => page.evaluate(() => document.activeElement && document.activeElement.dataset.testid);
const chartData = (model, chart) => page.evaluate(([m, c]) => window.dynserve.chartData(m, c), [model, chart]);
const values = (series) => series.points.map((p) => p[1]).filter((v) => v !== null);

// Click a button that asks for confirmation; check the dialog names what goes away; answer it.
async function confirmVia(testid, mustName, answer) {
  await page.getByTestId(testid).click();
  const dialog = page.getByTestId('confirm');
  await dialog.waitFor({ state: 'visible' });
  const said = `${await text('confirm-title')} ${await text('confirm-text')}`;
  for (const s of mustName) assert.ok(said.includes(s), `confirmation names "${s}": ${said}`);
  await page.getByTestId(answer ? 'confirm-ok' : 'confirm-cancel').click();
  await dialog.waitFor({ state: 'hidden' });
  return said;
}

async function expectServerError(expectedBody) {
  await page.getByTestId('alert').waitFor({ state: 'visible' });
  assert.equal(await text('alert-text'), expectedBody.error);
  await page.getByTestId('alert-close').click();
  await page.getByTestId('alert').waitFor({ state: 'hidden' });
}

// axe-core in the page: no serious or critical violations.
async function axeCheck(what) {
  if (!(await page.evaluate(() => Boolean(window.axe)))) await page.addScriptTag({ path: axePath });
  const result = await page.evaluate(async () => {
    const r = await window.axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help,
      nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }));
  });
  const bad = result.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  for (const v of result.filter((x) => !bad.includes(x))) console.log(`axe (${what}, ${v.impact}): ${v.id} ${v.help} ${v.nodes}`);
  assert.deepEqual(bad, [], `${what}: axe-core serious/critical violations`);
}

async function noSidewaysScroll(width) {
  const [scroll, client] = await page.evaluate(() =>
    [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
  assert.ok(scroll <= client, `${width} px: page is ${scroll} px wide, viewport ${client} px`);
  // every control is inside the viewport horizontally (usable without scrolling sideways)
  const outside = await page.evaluate((w) => [...document.querySelectorAll('button, input, select, textarea, a')]
    .filter((e) => e.offsetParent !== null && !e.closest('.skip'))
    .filter((e) => { const r = e.getBoundingClientRect(); return r.width > 0 && (r.left < 0 || r.right > w + 0.5); })
    .map((e) => e.dataset.testid || e.id || e.textContent.trim()), client);
  assert.deepEqual(outside, [], `${width} px: controls outside the viewport`);
}

// ---- the steps --------------------------------------------------------------------------------

step('the page loads: five example versions, server name and version, health, events, "updated n s ago"', async () => {
  for (const key of [`${Q}/1`, `${Q}/2`, 'binary_classifier/1', 'binary_classifier/2', 'identity/1']) {
    await page.getByTestId(`model-${key}`).waitFor();
    assert.equal(await text(`state-${key}`), 'registered');
  }
  const v2 = await get('/v2');
  await waitFor(async () => (await text('server-info')) === `${v2.name} ${v2.version}`, 'name and version');
  await waitFor(async () => (await text('health')) === 'ready', 'health "ready"');
  await waitFor(async () => /register/.test(await text('events')), 'register events');
  await waitFor(async () => /^updated \d+ s ago$/.test(await text('updated')), '"updated n s ago"');
  assert.equal(await page.getByTestId('alert').isVisible(), false);
  assert.equal(await page.locator('[role=alert]').count(), 1, 'one role=alert area');
  const whoami = await call('GET', '/auth/whoami');
  if (whoami.status === 404) assert.match(await text('whoami'), /auth off/);
});

step('Deploy quadratic_predictor v1 with an endpoint name: shown, the server agrees, no second deploy', async () => {
  await page.getByTestId(`endpoint-${Q}/1`).fill('quad-web');
  await page.getByTestId(`deploy-${Q}/1`).click();
  await page.getByTestId(`deployment-${Q}/1`).waitFor();
  assert.match(await text(`deployment-${Q}/1`), /quad-web/);
  assert.match(await text(`status-${Q}/1`), /active/);
  const d = (await get('/deployments')).deployments.find((x) => x.model_name === Q && x.version === '1');
  assert.ok(d, 'server lists the deployment');
  assert.equal(d.status, 'active');
  assert.equal(d.endpoint_name, 'quad-web');
  await waitFor(async () => page.getByTestId(`deploy-${Q}/1`).isDisabled(), 'deploy disabled');
  assert.equal(await page.getByTestId(`deploy-${Q}/1`).getAttribute('title'), 'already deployed');
  assert.equal(await text(`state-${Q}/1`), 'active');
  await page.getByTestId(`canary-${Q}`).waitFor();
  await waitFor(async () => /deploy/.test(await text('events')), 'deploy event');
});

step('model page: metadata with datatypes and shapes, versions and states, try-it pre-filled and formatted', async () => {
  await page.getByTestId(`model-link-${Q}/1`).click();
  await page.getByTestId('view-model').waitFor({ state: 'visible' });
  assert.equal(await page.getByTestId('view-overview').isVisible(), false);
  assert.equal(await text('model-title'), Q);
  const md = await get(`/v2/models/${Q}/versions/1`);
  await page.getByTestId(`inputs-${Q}/1`).waitFor();
  const io = await text(`inputs-${Q}/1`);
  assert.ok(io.includes(md.inputs[0].name) && io.includes(md.inputs[0].datatype) &&
    io.includes(`[${md.inputs[0].shape.join(', ')}]`), io);
  assert.match(await text(`outputs-${Q}/1`), /prediction FP32 \[-1, 1\]/);
  assert.match(await text(`version-${Q}/1`), /active.*quad-web.*100%/);
  assert.match(await text(`version-${Q}/2`), /registered/);
  assert.match(await text(`meta-${Q}/2`), /Not deployed/);

  await waitFor(async () => (await page.getByTestId('try-target').inputValue()) === `${Q}/1`, 'try-it target');
  await waitFor(async () => (await page.getByTestId('try-body').inputValue()) !== '', 'prefilled request');
  assert.deepEqual(JSON.parse(await page.getByTestId('try-body').inputValue()),
    { inputs: [{ name: 'input', shape: [2, 1], datatype: 'FP32', data: [1, 2] }] });
  await page.getByTestId('try-send').click();
  await page.getByTestId('try-table').waitFor();
  assert.match(await text('try-table'), /prediction FP32 \[2, 1\] \[6,15\]/);
  assert.match(await text('try-status'), /^HTTP 200/);
  const raw = JSON.parse(await page.getByTestId('try-result').textContent());
  assert.deepEqual(raw.outputs[0].data, [6, 15]);
  await page.getByTestId('home').click();
  await page.getByTestId('view-overview').waitFor({ state: 'visible' });
});

step('typing into the split form across three refresh cycles keeps the text and the focus', async () => {
  await page.getByTestId(`deploy-${Q}/2`).click();
  await page.getByTestId(`weight-${Q}/2`).waitFor();
  const w1 = page.getByTestId(`weight-${Q}/1`);
  await w1.click();
  await w1.press('Control+a');
  await page.keyboard.type('9');
  // The server changes meanwhile (a new card appears, stats move): the page updates around the form.
  assert.equal((await call('POST', '/deployments/deploy', { model_name: 'identity', version: '1' })).status, 201);
  await page.getByTestId('canary-identity').waitFor();
  await refreshCycles(3);
  assert.equal(await w1.inputValue(), '9');
  assert.equal(await activeTestId(), `weight-${Q}/1`, 'focus kept');
  assert.match(await text('paused'), /paused while you edit: split of quadratic_predictor/);
  await page.keyboard.type('0'); // the caret is still where it was
  assert.equal(await w1.inputValue(), '90');
  await page.keyboard.press('Tab');
  assert.equal(await activeTestId(), `weight-${Q}/2`);
  await page.keyboard.type('10');
  await refreshCycles(1);
  assert.equal(await page.getByTestId(`weight-${Q}/2`).inputValue(), '10');
  assert.equal(await text(`sum-${Q}`), 'sum 100% ✓');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => (await text(`split-${Q}`)) === 'Split: v1: 90%, v2: 10%', 'split shown');
  assert.deepEqual(await weightsOf(Q), { 1: 90, 2: 10 });
  await waitFor(async () => /^90%/.test(await text(`stats-${Q}/1`).then((t) => t.replace(/^v1 /, ''))), 'weight in the table');
});

step('live validation: a split that does not sum to 100 cannot be sent; Discard edits restores the server split', async () => {
  await page.getByTestId(`weight-${Q}/1`).fill('60');
  await page.getByTestId(`weight-${Q}/2`).fill('50');
  assert.match(await text(`sum-${Q}`), /sum 110%.*not 100/);
  assert.equal(await page.getByTestId(`set-traffic-${Q}`).isDisabled(), true);
  assert.match(await page.getByTestId(`set-traffic-${Q}`).getAttribute('title'), /sum to 110, not 100/);
  assert.equal(await page.getByTestId(`weight-${Q}/1`).getAttribute('aria-invalid'), 'true');
  await page.getByTestId(`weight-${Q}/2`).fill('4.5');
  assert.match(await text(`sum-${Q}`), /whole number/);
  await page.getByTestId(`discard-${Q}`).click();
  assert.equal(await page.getByTestId(`weight-${Q}/1`).inputValue(), '90');
  assert.equal(await page.getByTestId(`weight-${Q}/2`).inputValue(), '10');
  assert.equal(await page.getByTestId(`set-traffic-${Q}`).isEnabled(), true);
  assert.deepEqual(await weightsOf(Q), { 1: 90, 2: 10 }, 'server split unchanged');
});

step('guard settings: the server gets the guard, the page shows it armed and draws its threshold', async () => {
  await page.getByTestId(`guard-on-${Q}`).check();
  await page.getByTestId(`guard-max_error_rate-${Q}`).fill('0.5');
  await page.getByTestId(`guard-max_p99_ratio-${Q}`).fill('50');
  await page.getByTestId(`guard-min_requests-${Q}`).fill('1000000');
  await page.getByTestId(`guard-window_s-${Q}`).fill('5');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => (await get(`/deployments/${Q}/traffic`)).guard !== null, 'guard on the server');
  const t = await get(`/deployments/${Q}/traffic`);
  assert.deepEqual(t.weights, { 1: 90, 2: 10 });
  assert.deepEqual([t.guard.max_error_rate, t.guard.max_p99_ratio, t.guard.min_requests, t.guard.window_s], [0.5, 50, 1000000, 5]);
  await waitFor(async () => (await text(`guard-${Q}`)).startsWith(`Guard: ${t.guard.state}`), 'guard state');
  await waitFor(async () => (await chartData(Q, 'errors')).hlines.some((h) => h.y === 50), 'guard line at 50 %');
});

step('shadow traffic: set from the form, kept when the split changes, ended with "none"', async (t) => {
  const probe = await get(`/deployments/${Q}/traffic`);
  if (!('shadow' in probe)) { t.skip('this server has no shadow traffic'); return; }
  await page.getByTestId(`shadow-version-${Q}`).selectOption('2');
  await page.getByTestId(`shadow-percent-${Q}`).fill('');
  assert.match(await text(`sum-${Q}`), /shadow copy %/);
  assert.equal(await page.getByTestId(`set-traffic-${Q}`).isDisabled(), true);
  await page.getByTestId(`shadow-percent-${Q}`).fill('20');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => (await get(`/deployments/${Q}/traffic`)).shadow !== null, 'shadow on the server');
  assert.deepEqual((await get(`/deployments/${Q}/traffic`)).shadow, { version: '2', percent: 20 });
  await waitFor(async () => /shadow: v2 gets a copy of 20%/.test(await text(`split-${Q}`)), 'shadow shown');
  // a split change from the page keeps the shadow (a PUT without it would end it)
  await page.getByTestId(`weight-${Q}/1`).fill('80');
  await page.getByTestId(`weight-${Q}/2`).fill('20');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => (await weightsOf(Q))['1'] === 80, 'new split');
  const kept = await get(`/deployments/${Q}/traffic`);
  assert.deepEqual(kept.shadow, { version: '2', percent: 20 });
  assert.ok(kept.guard, 'guard kept');
  // the page must have taken the PUT's answer (it refills the form from it) before the next edit
  await waitFor(async () => /v1: 80%/.test(await text(`split-${Q}`)), 'new split shown');
  await waitFor(async () => !(await page.getByTestId(`set-traffic-${Q}`).isDisabled()), 'form ready');
  await page.getByTestId(`shadow-version-${Q}`).selectOption('');
  assert.equal(await page.getByTestId(`shadow-version-${Q}`).inputValue(), '');
  await page.getByTestId(`weight-${Q}/1`).fill('90');
  await page.getByTestId(`weight-${Q}/2`).fill('10');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => (await get(`/deployments/${Q}/traffic`)).shadow === null, 'shadow ended');
  assert.deepEqual(await weightsOf(Q), { 1: 90, 2: 10 });
  await waitFor(async () => (await text(`split-${Q}`)) === 'Split: v1: 90%, v2: 10%', 'no shadow shown');
});

step('charts: after traffic they hold real data points per version, the split and the events', async () => {
  // Traffic through the split route until the chart holds it (counts, not durations: a loaded
  // machine just takes more polls); then two more polls so rates fall back to what is measured.
  const enough = async () => {
    const c = await chartData(Q, 'rate');
    const pos = (l) => values(c.series.find((x) => x.label === l)).filter((v) => v > 0).length;
    return pos('v1') >= 2 && pos('v2') >= 1;
  };
  const end = Date.now() + 40000;
  let sent = 0;
  while (!(await enough())) {
    assert.ok(Date.now() < end, `chart still without traffic after ${sent} requests`);
    for (let i = 0; i < 20; i++) {
      const r = await call('POST', `/v2/models/${Q}/infer`, { inputs: [{ name: 'input', shape: [1, 1], datatype: 'FP32', data: [1] }] });
      assert.equal(r.status, 200);
      sent++;
      await sleep(20);
    }
  }
  await refreshCycles(2);
  const rate = await chartData(Q, 'rate');
  const [r1, r2] = ['v1', 'v2'].map((l) => rate.series.find((s) => s.label === l));
  assert.ok(values(r1).filter((v) => v > 0).length >= 2, `v1 rate points: ${JSON.stringify(r1.points)}`);
  assert.ok(values(r2).filter((v) => v > 0).length >= 1, `v2 rate points: ${JSON.stringify(r2.points)}`);
  // requests counted by the chart (rate x interval) never exceed what the server counted
  const counted = (s) => s.points.reduce((acc, p, i) => acc + (p[1] && i ? (p[1] * (p[0] - s.points[i - 1][0])) / 1000 : 0), 0);
  const total = (await get('/models/stats')).stats.filter((s) => s.model_name === Q).reduce((a, s) => a + s.request_count, 0);
  assert.ok(counted(r1) + counted(r2) <= total + 1, `chart ${counted(r1) + counted(r2)} vs server ${total}`);
  assert.ok(sent > 0);
  // the path of each series has as many vertices as non-null points after the first break
  const d = await page.getByTestId(`chart-rate-${Q}`).locator('.series[data-label="v1"] path').getAttribute('d');
  assert.ok((d.match(/[ML]/g) || []).length >= 2, d);
  const share = await chartData(Q, 'share');
  assert.deepEqual(share.hlines.map((h) => h.label), ['split v1 90%', 'split v2 10%']);
  assert.ok(values(share.series[0]).some((v) => v > 50), 'v1 takes most of the traffic');
  const latency = await chartData(Q, 'latency');
  assert.deepEqual(latency.series.map((s) => s.label), ['v1 p50', 'v2 p50', 'v1 p99', 'v2 p99']);
  assert.ok(values(latency.series[0]).some((v) => v > 0), 'p50 points');
  assert.ok(latency.hlines.some((h) => /guard p99 limit/.test(h.label)), 'p99 guard line');
  const letters = rate.marks.map((m) => m.letter).join('');
  assert.ok(letters.includes('D') && letters.includes('S'), `event marks: ${letters}`);
  assert.ok(await page.getByTestId(`chart-rate-${Q}`).locator('.mark').count() >= 1, 'marks drawn');
  assert.match(await page.getByTestId(`chart-rate-${Q}`).locator('svg.chart').getAttribute('aria-label'), /Latest: v1: [\d.]+; v2: [\d.]+/);
});

step('Promote sends all traffic to v2; Rollback restores the split; both are marked on the charts', async () => {
  await page.getByTestId(`promote-target-${Q}`).selectOption('2');
  await page.getByTestId(`promote-${Q}`).click();
  await waitFor(async () => (await weightsOf(Q))['2'] === 100, 'promoted on the server');
  await waitFor(async () => /v2: 100%/.test(await text(`split-${Q}`)), 'promoted split shown');
  await page.getByTestId(`rollback-${Q}`).click();
  await waitFor(async () => (await weightsOf(Q))['1'] === 90, 'rolled back on the server');
  assert.deepEqual(await weightsOf(Q), { 1: 90, 2: 10 });
  await waitFor(async () => (await text(`split-${Q}`)) === 'Split: v1: 90%, v2: 10%', 'rolled-back split shown');
  await waitFor(async () => /promote/.test(await text('events')) && /rollback/.test(await text('events')), 'events');
  await waitFor(async () => {
    const letters = (await chartData(Q, 'rate')).marks.map((m) => m.letter).join('');
    return letters.includes('P') && letters.includes('R');
  }, 'P and R marks');
});

step('a failing action shows the server\'s error: rollback with no earlier split', async () => {
  // identity has no split at all: the server refuses a rollback
  const expected = await call('POST', '/deployments/identity/rollback');
  assert.ok(expected.status >= 400 && expected.status < 500, JSON.stringify(expected));
  await page.getByTestId('rollback-identity').click();
  await expectServerError(expected.body);
});

step('Delete asks first, naming what goes away; Cancel keeps it; a deployed version gets the server\'s 409', async () => {
  await confirmVia(`delete-${Q}/1`, [`${Q} version 1`, 'deployed'], false);
  assert.ok((await get('/models')).models.find((m) => m.name === Q).versions.includes('1'), 'cancel: still registered');
  const expected = await call('DELETE', `/models/${Q}/versions/1`);
  assert.equal(expected.status, 409);
  await confirmVia(`delete-${Q}/1`, [`${Q} version 1`], true);
  await expectServerError(expected.body);
  assert.ok((await get('/models')).models.find((m) => m.name === Q).versions.includes('1'), 'still registered');
});

step('register by upload: a plugin .so becomes a version; a broken file shows the server\'s error; Delete removes it', async () => {
  const so = Buffer.concat([readFileSync(join(dirname(bin), 'models', 'identity', '1', 'model.so')), randomBytes(16)]);
  await page.getByTestId('upload-file').setInputFiles({ name: 'web_upload.so', mimeType: 'application/octet-stream', buffer: so });
  assert.equal(await page.getByTestId('upload-model').inputValue(), 'web_upload', 'model name from the file name');
  assert.match(await text('upload-kind'), /application\/octet-stream/);
  await page.getByTestId('upload-version').fill('3');
  await page.getByTestId('upload').click();
  await page.getByTestId('model-web_upload/3').waitFor();
  assert.ok((await get('/models')).models.some((m) => m.name === 'web_upload' && m.versions.includes('3')));
  assert.match(await text('notice'), /Registered web_upload v3/);

  const junk = randomBytes(64);
  const expected = await call('PUT', '/models/web_junk/versions/1', junk, { 'Content-Type': 'application/octet-stream' });
  assert.equal(expected.status, 400, JSON.stringify(expected.body));
  await page.getByTestId('upload-file').setInputFiles({ name: 'junk.so', mimeType: 'application/octet-stream', buffer: junk });
  await page.getByTestId('upload-model').fill('web_junk2');
  await page.getByTestId('upload-version').fill('1');
  await page.getByTestId('upload').click();
  await page.getByTestId('alert').waitFor({ state: 'visible' });
  assert.equal(await text('alert-text'), expected.body.error.replace('web_junk', 'web_junk2'));
  await page.getByTestId('alert-close').click();

  await confirmVia('delete-web_upload/3', ['web_upload version 3', 'only version'], true);
  await page.getByTestId('model-web_upload/3').waitFor({ state: 'detached' });
  assert.ok(!(await get('/models')).models.some((m) => m.name === 'web_upload'));
});

step('register by upload: a model archive (.tar: config.json + artifacts) goes as application/x-tar and serves', async (t) => {
  const dir = ['iris', 'diabetes', 'digits'].map((m) => join(dirname(bin), 'models', m, '1'))
    .find((d) => existsSync(join(d, 'config.json')));
  if (!dir) { t.skip('no example model made of files (config.json) in this build'); return; }
  const tar = spawnSync('tar', ['-C', dir, '-cf', '-', ...readdirSync(dir)], { timeout: 30000, maxBuffer: 1 << 28 });
  assert.equal(tar.status, 0, String(tar.stderr));
  // A new upload: the name typed for the failed one before must not stick to this file.
  await page.getByTestId('upload-model').fill('');
  await page.getByTestId('upload-file').setInputFiles({ name: 'web_tar.tar', mimeType: 'application/x-tar', buffer: tar.stdout });
  assert.match(await text('upload-kind'), /application\/x-tar/);
  assert.equal(await page.getByTestId('upload-model').inputValue(), 'web_tar');
  await page.getByTestId('upload-version').fill('1');
  await page.getByTestId('upload').click();
  await page.getByTestId('model-web_tar/1').waitFor();
  const reg = await get('/models/web_tar/versions/1');
  assert.ok(reg.backend, JSON.stringify(reg));
  await page.getByTestId('deploy-web_tar/1').click();
  await page.getByTestId('deployment-web_tar/1').waitFor();
  await page.getByTestId('model-link-web_tar/1').click();
  const md = await get('/v2/models/web_tar/versions/1');
  await page.getByTestId('inputs-web_tar/1').waitFor();
  assert.ok((await text('inputs-web_tar/1')).includes(md.inputs[0].datatype));
  await waitFor(async () => (await text('registration-web_tar/1')).includes(`backend ${reg.backend}`), 'backend shown');
  await page.getByTestId('home').click();
  await confirmVia('undeploy-web_tar/1', ['web_tar version 1'], true);
  await page.getByTestId('deployment-web_tar/1').waitFor({ state: 'detached' });
});

step('server strings are shown as text, never as HTML', async () => {
  const evil = '<img src=x onerror=window.__xss=1>';
  await page.goto(`${base}/#/models/identity`);
  await waitFor(async () => (await page.getByTestId('try-target').inputValue()) === 'identity/1', 'identity target');
  await waitFor(async () => /"inputs"/.test(await page.getByTestId('try-body').inputValue()), 'identity example');
  await page.getByTestId('try-body').fill(JSON.stringify({ inputs: [{ name: 'text', shape: [1], datatype: 'BYTES', data: [evil] }] }));
  await page.getByTestId('try-send').click();
  await waitFor(async () => (await page.getByTestId('try-result').textContent()).includes(evil), 'echoed text');
  await page.getByTestId('try-body').fill(JSON.stringify({ inputs: [{ name: evil, shape: [1], datatype: 'FP32', data: ['a'] }] }));
  await page.getByTestId('try-send').click();
  await page.getByTestId('alert').waitFor({ state: 'visible' });
  assert.ok((await text('alert-text')).includes(evil), 'error quotes the name as text');
  assert.match(await text('try-status'), /^HTTP 400/);
  await sleep(300);
  assert.equal(await page.evaluate(() => window.__xss), undefined);
  assert.equal(await page.locator('img').count(), 0);
  await page.getByTestId('alert-close').click();
});

step('accessibility: axe-core finds no serious or critical violation (model page, overview, dialog)', async () => {
  await axeCheck('model page');
  await page.getByTestId('home').click();
  await page.getByTestId(`canary-${Q}`).waitFor();
  await refreshCycles(1);
  await axeCheck('overview');
  await page.getByTestId(`undeploy-${Q}/2`).click();
  await page.getByTestId('confirm').waitFor({ state: 'visible' });
  await axeCheck('confirmation dialog');
  await page.keyboard.press('Escape');
  await page.getByTestId('confirm').waitFor({ state: 'hidden' });
  assert.ok((await get('/deployments')).deployments.some((d) => d.model_name === Q && d.version === '2'), 'Escape cancels');
});

step('keyboard: the split form, its button and the row actions are reachable with Tab', async () => {
  await page.getByTestId('home').focus();
  const seen = new Set();
  for (let i = 0; i < 200 && seen.size < 4; i++) {
    await page.keyboard.press('Tab');
    const id = await activeTestId();
    if ([`weight-${Q}/1`, `set-traffic-${Q}`, `promote-${Q}`, `undeploy-${Q}/1`].includes(id)) seen.add(id);
  }
  assert.equal(seen.size, 4, `reached: ${[...seen]}`);
});

step('screenshots at 1280 and 800 px: no sideways scroll, every control on screen', async () => {
  await page.setViewportSize({ width: 1280, height: 1000 });
  await refreshCycles(1);
  await noSidewaysScroll(1280);
  await screenshot('dashboard-1280');
  await page.setViewportSize({ width: 800, height: 1000 });
  await refreshCycles(1);
  await noSidewaysScroll(800);
  await screenshot('dashboard-800');
  await page.goto(`${base}/#/models/${Q}`);
  await page.getByTestId(`inputs-${Q}/1`).waitFor();
  await page.getByTestId(`inputs-${Q}/2`).waitFor();
  await noSidewaysScroll(800);
  await screenshot('model-800');
  await page.setViewportSize({ width: 1280, height: 1000 });
  await noSidewaysScroll(1280);
  await screenshot('model-1280');
  await page.getByTestId('home').click();
});

step('Undeploy asks first, naming the route and the traffic that moves; then v2 is gone from page and server', async () => {
  await confirmVia(`undeploy-${Q}/2`, [`/v2/models/${Q}/versions/2/infer`, '10%'], true);
  await page.getByTestId(`deployment-${Q}/2`).waitFor({ state: 'detached' });
  assert.ok(!(await get('/deployments')).deployments.some((d) => d.model_name === Q && d.version === '2'));
  await page.getByTestId(`weight-${Q}/2`).waitFor({ state: 'detached' });
  await waitFor(async () => /undeploy/.test(await text('events')), 'undeploy event');
  assert.equal(await page.getByTestId(`deploy-${Q}/2`).isEnabled(), true);
});

step('auth off: a token still lives in sessionStorage, goes out as a Bearer header, and sign-out clears it', async (t) => {
  const whoami = await call('GET', '/auth/whoami');
  if (whoami.status !== 404) { t.skip('auth is built in: tested with real tokens below'); return; }
  // auth off: the server ignores tokens; the page still handles one like it would with auth on
  await page.evaluate(() => sessionStorage.setItem('dynserve.token', 'web-test-token'));
  await page.reload();
  await page.getByTestId('signout').waitFor({ state: 'visible' });
  const from = requests.length;
  await refreshCycles(1);
  const sent = requests.slice(from).filter((r) => r.url.startsWith(base));
  assert.ok(sent.length > 0 && sent.every((r) => r.auth === 'Bearer web-test-token'), JSON.stringify(sent.slice(0, 3)));
  await page.getByTestId('signout').click();
  await page.getByTestId('signout').waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dynserve.token')), null);
  const after = requests.length;
  await refreshCycles(1);
  assert.ok(requests.slice(after).every((r) => r.auth === null), 'no token after sign-out');
});

step('server stopped: "unreachable"; restarted: deployments back, a failed one shows its reason', async () => {
  // A version whose plugin file will be gone at the next start: identity's plugin plus a few
  // trailing bytes (a distinct content address, still a loadable shared object).
  const so = Buffer.concat([readFileSync(join(dirname(bin), 'models', 'identity', '1', 'model.so')), randomBytes(16)]);
  const up = await call('PUT', '/models/web_echo/versions/1', so, { 'Content-Type': 'application/octet-stream' });
  assert.equal(up.status, 201, JSON.stringify(up.body));
  await page.getByTestId('refresh').click();
  await page.getByTestId('deploy-web_echo/1').click();
  await page.getByTestId('deployment-web_echo/1').waitFor();

  const exit = await stopServer();
  assert.deepEqual(exit, { code: 0, signal: null }, 'clean exit on SIGTERM');
  await waitFor(async () => (await text('health')) === 'unreachable', '"unreachable"');
  unlinkSync(join(dataDir, 'plugins', `${up.body.plugin_sha256}.so`));

  await startServer();
  await waitFor(async () => (await text('health')) === 'ready', 'ready again');
  const failed = (await get('/deployments')).deployments.find((d) => d.model_name === 'web_echo');
  assert.equal(failed.status, 'failed');
  await waitFor(async () => /failed/.test(await text('status-web_echo/1')), 'failed status');
  assert.equal(await text('reason-web_echo/1'), failed.reason);
  assert.match(await text(`status-${Q}/1`), /active/, 'v1 active again after the restart');
  await screenshot('dashboard after a restart');
  await confirmVia('undeploy-web_echo/1', ['failed'], true);
  await page.getByTestId('deployment-web_echo/1').waitFor({ state: 'detached' });
});

// ---- with auth on (sec-auth's `dynserve token`, GET /auth/whoami): real tokens, real roles ----

function createToken(name, role) {
  const r = spawnSync(bin, ['token', 'create', '--role', role, '--name', name, '--data-dir', dataDir],
    { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.status, 0, `dynserve token create: ${r.stderr}`);
  return r.stdout.trim();
}
let authServed = null; // does this server have GET /auth/whoami?
function authStep(name, fn) {
  step(name, async (t) => {
    if (authServed === null) authServed = (await call('GET', '/auth/whoami')).status !== 404;
    if (!authServed) { t.skip('this server has no GET /auth/whoami (auth not built in)'); return; }
    await fn(t);
  });
}
const tokens = {};

authStep('auth on: without a token the page asks to sign in', async () => {
  tokens.viewer = createToken('web-viewer', 'viewer');
  tokens.admin = createToken('web-admin', 'admin');
  await waitFor(async () => (await call('GET', '/auth/whoami')).status === 401, 'auth turned on');
  await page.evaluate(() => sessionStorage.clear());
  await page.reload();
  await page.getByTestId('signin-form').waitFor({ state: 'visible' });
  await waitFor(async () => (await text('whoami')) === 'not signed in', '"not signed in"');
});

authStep('a viewer signs in: data shows, controls it may not use are disabled with the reason', async () => {
  await page.getByTestId('signin-token').fill(tokens.viewer);
  await page.getByTestId('signin').click();
  await waitFor(async () => (await text('whoami')) === 'signed in as web-viewer (viewer)', 'viewer signed in');
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dynserve.token')), tokens.viewer);
  await page.getByTestId(`deployment-${Q}/1`).waitFor();
  assert.match(await text('role-note'), /viewer.*may not deploy.*register, upload and delete/);
  for (const [id, need] of [['deploy-binary_classifier/1', 'deployer'], [`set-traffic-${Q}`, 'deployer'],
    [`undeploy-${Q}/1`, 'deployer'], [`rollback-${Q}`, 'deployer'], ['delete-binary_classifier/1', 'admin'], ['upload', 'admin']]) {
    await waitFor(async () => page.getByTestId(id).isDisabled(), `${id} disabled`);
    assert.equal(await page.getByTestId(id).getAttribute('title'), `needs the ${need} role (you are viewer)`);
  }
  const from = requests.length;
  await refreshCycles(1);
  const sent = requests.slice(from).filter((r) => r.url.startsWith(base));
  assert.ok(sent.length > 0 && sent.every((r) => r.auth === `Bearer ${tokens.viewer}`), 'Bearer header on every request');
});

authStep('sign-out clears the token; a wrong token shows the server\'s error; an admin deploys', async () => {
  await page.getByTestId('signout').click();
  await page.getByTestId('signin-form').waitFor({ state: 'visible' });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dynserve.token')), null);
  const expected = await call('GET', '/auth/whoami', undefined, { Authorization: 'Bearer not-a-real-token' });
  assert.equal(expected.status, 401);
  await page.getByTestId('signin-token').fill('not-a-real-token');
  await page.getByTestId('signin').click();
  await page.getByTestId('alert').waitFor({ state: 'visible' });
  assert.equal(await text('alert-text'), `sign-in failed: ${expected.body.error}`);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('dynserve.token')), null);
  await page.getByTestId('alert-close').click();
  await page.getByTestId('signin-token').fill(tokens.admin);
  await page.getByTestId('signin').click();
  await waitFor(async () => (await text('whoami')) === 'signed in as web-admin (admin)', 'admin signed in');
  await waitFor(async () => page.getByTestId('deploy-binary_classifier/1').isEnabled(), 'deploy enabled');
  assert.equal(await page.getByTestId('role-note').isVisible(), false);
  await page.getByTestId('deploy-binary_classifier/1').click();
  await page.getByTestId('deployment-binary_classifier/1').waitFor();
  const d = (await call('GET', '/deployments', undefined, { Authorization: `Bearer ${tokens.admin}` })).body;
  assert.ok(d.deployments.some((x) => x.model_name === 'binary_classifier' && x.version === '1'));
});

step('the server exits 0 on SIGTERM; the page threw no script error', async () => {
  assert.deepEqual(await stopServer(), { code: 0, signal: null });
  assert.deepEqual(pageErrors, []);
});
