// Browser test for /docs: Swagger UI (swagger-ui-dist from npm, installed by the build into
// <build>/web/docs) renders the server's live /openapi.json in Debian's Chromium, shows the path
// of a version deployed a moment ago, and loads nothing from anywhere but the server itself.
//
// env: DYNSERVE_BIN (default <repo>/build/dynserve; its directory's web/ is the web root, since
// the renderer exists only in the build), CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const bin = resolve(process.env.DYNSERVE_BIN || join(repo, 'build', 'dynserve'));
const webRoot = join(dirname(bin), 'web');
const Q = 'quadratic_predictor';
const STEP_MS = 15000;

let server, base, browser, page, dataDir;
const foreign = []; // requests the page made to anything but the server

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => ok(port)); });
  });
}

async function call(method, path, body) {
  const r = await fetch(base + path, {
    method, signal: AbortSignal.timeout(STEP_MS),
    headers: { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, body: await r.text() };
}

before(async () => {
  assert.ok(existsSync(join(webRoot, 'docs', 'swagger-ui-bundle.js')),
    `${webRoot}/docs has no swagger-ui-bundle.js: the build installs it (cmake/docs_ui.cmake)`);
  dataDir = mkdtempSync(join(tmpdir(), 'dynserve-docs-'));
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  server = spawn(bin, ['--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir,
    '--web-root', webRoot, '--log-level', 'warn'], { stdio: 'ignore' });
  const end = Date.now() + STEP_MS;
  for (;;) {
    try { if ((await call('GET', '/v2/health/ready')).status === 200) break; } catch { /* not yet */ }
    if (Date.now() > end) throw new Error('server did not become ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium' });
  page = await browser.newPage();
  page.on('request', (req) => { if (!req.url().startsWith(base)) foreign.push(req.url()); });
});

after(async () => {
  await browser?.close();
  server?.kill('SIGTERM');
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

test('docs renders the live document, deployed versions included, from the server only', { timeout: 60000 }, async () => {
  const d = await call('POST', '/deployments/deploy', { model_name: Q, version: '1' });
  assert.equal(d.status, 201, d.body);
  await page.goto(base + '/docs');
  const deployed = page.locator('.opblock-summary-path', { hasText: `/v2/models/${Q}/versions/1/infer` });
  await deployed.first().waitFor({ timeout: STEP_MS });
  const title = await page.locator('.info .title').innerText();
  assert.match(title, /dynserve/);
  const paths = await page.locator('.opblock-summary-path').count();
  assert.ok(paths > 30, `only ${paths} operations rendered`);
  assert.deepEqual(foreign, [], 'the docs page loaded something from outside the server');
  // undeploy: a reload no longer shows the version's path
  const u = await call('POST', '/deployments/undeploy', { model_name: Q, version: '1' });
  assert.equal(u.status, 200, u.body);
  await page.reload();
  await page.locator('.opblock-summary-path').first().waitFor({ timeout: STEP_MS });
  assert.equal(await deployed.count(), 0);
});
