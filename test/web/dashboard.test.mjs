// Browser tests for the dashboard: the real server binary on a free loopback port, Debian's
// Chromium driven by playwright-core. Each step is checked in the page and against the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = process.env.DYNSERVE_BIN || join(repo, 'build', 'dynserve');
const Q = 'quadratic_predictor';
const STEP_MS = 10000;

let server, base, browser, page, dataDir, artifacts;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

async function waitFor(fn, what, ms = STEP_MS) {
  const end = Date.now() + ms;
  for (;;) {
    try { if (await fn()) return; } catch (e) { /* not yet */ }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function apiGet(path) {
  const r = await fetch(base + path);
  return r.json();
}

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'dynserve-web-'));
  artifacts = mkdtempSync(join(tmpdir(), 'dynserve-web-shots-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
    '--log-level', 'warn'], { stdio: ['ignore', 'inherit', 'inherit'] });
  await waitFor(async () => (await fetch(`${base}/v2/health/ready`)).ok, 'server ready');
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.setDefaultTimeout(STEP_MS);
  await page.goto(base + '/');
});

after(async () => {
  if (browser) await browser.close();
  if (server) {
    const exited = new Promise((ok) => server.once('exit', (code) => ok(code)));
    server.kill('SIGTERM');
    assert.equal(await exited, 0, 'server did not exit cleanly on SIGTERM');
  }
  rmSync(dataDir, { recursive: true, force: true });
});

// Run a test body; on failure keep a screenshot for whoever reads the log.
function step(name, fn) {
  test(name, async () => {
    try {
      await fn();
    } catch (e) {
      const shot = join(artifacts, `${name.replace(/\W+/g, '_')}.png`);
      await page.screenshot({ path: shot, fullPage: true }).catch(() => {});
      e.message += ` (screenshot: ${shot})`;
      throw e;
    }
  });
}

step('the page lists the five example model versions', async () => {
  for (const key of [`${Q}/1`, `${Q}/2`, 'binary_classifier/1', 'binary_classifier/2', 'identity/1']) {
    await page.getByTestId(`model-${key}`).waitFor();
  }
  await waitFor(async () => /ready/.test(await page.getByTestId('health').textContent()), 'health');
});

step('deploy from the page makes the version live', async () => {
  await page.getByTestId(`deploy-${Q}/1`).click();
  await page.getByTestId(`deployment-${Q}/1`).waitFor();
  const deps = (await apiGet('/deployments')).deployments;
  assert.ok(deps.some((d) => d.model_name === Q && d.version === '1' && d.status === 'active'));
});

step('try-it inference shows the prediction', async () => {
  await waitFor(async () => (await page.getByTestId('try-target').inputValue()) === `${Q}/1`,
    'try-it target');
  await page.getByTestId('try-body').fill(JSON.stringify(
    { inputs: [{ name: 'input', shape: [2, 1], datatype: 'FP32', data: [1, 2] }] }));
  await page.getByTestId('try-send').click();
  await waitFor(async () => {
    const out = JSON.parse(await page.getByTestId('try-result').textContent());
    return JSON.stringify(out.outputs[0].data) === '[6,15]';
  }, 'prediction [6, 15]');
});

step('a 90/10 split set in the form is the server split', async () => {
  await page.getByTestId(`deploy-${Q}/2`).click();
  await page.getByTestId(`weight-${Q}/2`).waitFor();
  await page.getByTestId(`weight-${Q}/1`).fill('90');
  await page.getByTestId(`weight-${Q}/2`).fill('10');
  await page.getByTestId(`set-traffic-${Q}`).click();
  await waitFor(async () => /v1: 90%/.test(await page.getByTestId(`split-${Q}`).textContent()),
    'split shown');
  const t = await apiGet(`/deployments/${Q}/traffic`);
  assert.deepEqual(t.weights, { 1: 90, 2: 10 });
});

step('promote and rollback buttons change the split', async () => {
  await page.getByLabel(`promote ${Q} to`).selectOption('2');
  await page.getByTestId(`promote-${Q}`).click();
  await waitFor(async () => (await apiGet(`/deployments/${Q}/traffic`)).weights['2'] === 100,
    'promoted');
  await page.getByTestId(`rollback-${Q}`).click();
  await waitFor(async () => (await apiGet(`/deployments/${Q}/traffic`)).weights['1'] === 90,
    'rolled back');
});

step('a server error is shown in the alert area', async () => {
  await page.getByTestId(`delete-${Q}/1`).click(); // 409: deployed
  await page.getByTestId('alert').waitFor({ state: 'visible' });
  assert.match(await page.getByTestId('alert').textContent(), /deployed/);
});

step('undeploy from the page removes the deployment', async () => {
  await page.getByTestId(`undeploy-${Q}/2`).click();
  await page.getByTestId(`deployment-${Q}/2`).waitFor({ state: 'detached' });
  const deps = (await apiGet('/deployments')).deployments;
  assert.ok(!deps.some((d) => d.model_name === Q && d.version === '2'));
});

step('stats show the requests the page sent', async () => {
  await waitFor(async () => {
    const row = await page.getByTestId(`stats-${Q}/1`).textContent();
    return /quadratic_predictor1[1-9]/.test(row.replace(/\s+/g, ''));
  }, 'stats row with requests');
});
