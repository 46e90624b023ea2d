// End-to-end test of the operator dashboard in a real browser (Debian's
// Chromium driven by playwright-core; no browser is ever downloaded).
//
//   node dashboard.mjs --admin http://127.0.0.1:ADMINPORT --gateway http://127.0.0.1:PORT \
//     --token ADMIN_TOKEN --out DIR [--forbid secret1,secret2] [--chromium /usr/bin/chromium]
//
// It prints one "STEP ok <name>" line per step and exits non-zero at the
// first failure, saving a screenshot of the failing page into --out. The
// gateway must serve `openai/gpt-test` without a key (require_keys = false),
// and the secrets in --forbid must never appear in any page or API response.

import { chromium } from 'playwright-core';
import fs from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values: opt } = parseArgs({
  options: {
    admin: { type: 'string' },
    gateway: { type: 'string' },
    token: { type: 'string' },
    out: { type: 'string' },
    forbid: { type: 'string', default: '' },
    chromium: { type: 'string', default: process.env.CHROMIUM || '/usr/bin/chromium' },
  },
});
for (const k of ['admin', 'gateway', 'token', 'out']) {
  if (!opt[k]) {
    console.error(`missing --${k}\nusage: node dashboard.mjs --admin URL --gateway URL --token TOKEN --out DIR [--forbid a,b]`);
    process.exit(2);
  }
}
const ADMIN = opt.admin.replace(/\/$/, '');
const GATEWAY = opt.gateway.replace(/\/$/, '');
const FORBID = opt.forbid.split(',').map((s) => s.trim()).filter(Boolean);
const TAG = 'browser-test';
// Generous: CI is a two-core machine running the gateway and Chromium at once.
const ACTION_TIMEOUT = 30_000;
const NAV_TIMEOUT = 60_000;
const LOG_WAIT = 60_000;

await fs.mkdir(opt.out, { recursive: true });

// ---------------------------------------------------------------- harness

const leaks = [];
const pageErrors = [];
const bodyChecks = [];
let responsesChecked = 0;
let unreadable = 0;
let closing = false;
let pagesChecked = 0;

function findForbidden(text, where) {
  for (const secret of FORBID) {
    if (text.includes(secret)) leaks.push(`${where} contains forbidden secret ${secret.slice(0, 6)}…`);
  }
}

function withTimeout(promise, ms) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), ms))]);
}

function assert(cond, message) {
  if (!cond) throw new Error(message);
}

async function until(what, fn, timeout = LOG_WAIT, every = 1000) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out after ${timeout / 1000} s waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

const browser = await chromium.launch({
  executablePath: opt.chromium,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const context = await browser.newContext({
  viewport: { width: 1280, height: 800 },
  colorScheme: 'light',
  acceptDownloads: true,
});
await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ADMIN });
const page = await context.newPage();
page.setDefaultTimeout(ACTION_TIMEOUT);
page.setDefaultNavigationTimeout(NAV_TIMEOUT);
page.on('pageerror', (e) => pageErrors.push(e.message));
// The dashboard must run under a strict Content-Security-Policy (no inline
// script or style); a violation shows up only as a console error.
page.on('console', (m) => {
  if (m.type() === 'error' && /Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
});
page.on('crash', () => console.error(`Chromium: the page crashed during step ${current}`));
page.on('close', () => closing || console.error(`Chromium: the page closed during step ${current}`));
browser.on('disconnected', () => closing || console.error(`Chromium: the browser went away during step ${current}`));
page.on('response', (res) => {
  if (!res.url().startsWith(ADMIN)) return;
  const where = `response ${res.request().method()} ${new URL(res.url()).pathname}`;
  // A body the page navigated away from can stay pending forever; give up
  // on it after a while and count it (those are the pages' own redirects).
  const gaveUp = new Promise((resolve) => setTimeout(() => resolve(null), 5_000));
  bodyChecks.push(Promise.race([res.body().catch(() => null), gaveUp]).then((b) => {
    if (b === null) {
      unreadable += 1;
      if (process.env.SHOW_UNREADABLE) console.error(`  unreadable body: ${where} (HTTP ${res.status()})`);
      return;
    }
    responsesChecked += 1;
    findForbidden(b.toString('utf8'), where);
  }));
});

let current = 'start';
async function step(name, fn) {
  current = name;
  try {
    await fn();
    await Promise.all(bodyChecks.splice(0));
    assert(!pageErrors.length, `uncaught error in the page: ${pageErrors.join(' | ')}`);
    assert(!leaks.length, leaks.join('; '));
  } catch (e) {
    console.error(`STEP FAIL ${name}: ${e.message}`);
    const shot = path.join(opt.out, `failure-${name}.png`);
    await withTimeout(page.screenshot({ path: shot, fullPage: true }), 15_000).catch(() => {});
    console.error(`  page: ${page.url()}\n  screenshot: ${shot}`);
    closing = true;
    await withTimeout(browser.close(), 15_000).catch(() => {});
    process.exit(1);
  }
  console.log(`STEP ok ${name}`);
}

/// Checks the rendered page for forbidden secrets and saves a screenshot.
async function snapshot(name) {
  const html = await page.evaluate(() => document.documentElement.outerHTML);
  pagesChecked += 1;
  findForbidden(html, `page ${name}`);
  // Let polling pages settle so the image is not caught mid-redraw.
  await page.waitForTimeout(300);
  // Nothing on a page may run off its side (a bar placed past its track,
  // a table too wide for its wrapper).
  const overflow = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    view: document.documentElement.clientWidth,
  }));
  if (overflow.scroll > overflow.view + 1) {
    throw new Error(`page ${name} is ${overflow.scroll}px wide in a ${overflow.view}px window`);
  }
  await page.screenshot({ path: path.join(opt.out, `${name}.png`), fullPage: true });
}

async function checkPage(name) {
  const html = await page.evaluate(() => document.documentElement.outerHTML);
  pagesChecked += 1;
  findForbidden(html, `page ${name}`);
}

async function gatewayChat(auth, nonce) {
  // Cached, so the Cache page has an entry to list and purge.
  const headers = {
    'content-type': 'application/json',
    'x-switchyard-metadata': JSON.stringify({ team: TAG }),
    'x-switchyard-cache-ttl': '600',
  };
  if (auth) headers.authorization = `Bearer ${auth}`;
  const res = await fetch(`${GATEWAY}/v1/chat/completions`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ model: 'openai/gpt-test', messages: [{ role: 'user', content: `browser test ${nonce}` }] }),
  });
  const text = await res.text();
  findForbidden(text, 'gateway response');
  return { status: res.status, id: res.headers.get('x-switchyard-request-id'), text };
}

/// Runs fetch inside the page (same origin, the page's cookies).
function pageFetch(url, init) {
  return page.evaluate(async ([u, i]) => {
    const r = await fetch(u, { credentials: 'same-origin', ...i });
    return { status: r.status, text: await r.text() };
  }, [url, init]);
}

const byTest = (id) => page.getByTestId(id);

/// Waits until a table's last load has finished (pages mark it aria-busy).
const settled = (testid) => page.locator(`[data-testid="${testid}"][aria-busy="false"]`).waitFor();

async function signIn() {
  await page.goto(`${ADMIN}/login`);
  await byTest('login-token').fill(opt.token);
  await byTest('login-submit').click();
  await page.waitForURL((u) => u.pathname === '/' && u.hash.startsWith('#/'));
  await byTest('tile-requests').waitFor();
}

async function go(nav, ready) {
  await byTest(`nav-${nav}`).click();
  await page.waitForFunction((n) => location.hash.startsWith(`#/${n}`), nav);
  await page.locator(`[data-page="${nav}"][aria-busy="false"]`).waitFor();
  if (ready) await ready.waitFor();
}

// ------------------------------------------------------------------- steps

let requestId = null;
let keySecret = null;
let keyName = null;
const nonce = `${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;

await step('login', async () => {
  await page.goto(`${ADMIN}/`);
  await page.waitForURL((u) => u.pathname === '/login');
  await byTest('login-token').waitFor();
  await snapshot('login');
  await byTest('login-token').fill(`wrong-${opt.token}`);
  await byTest('login-submit').click();
  await page.getByTestId('login-error').filter({ hasText: /not valid/i }).waitFor();
  await byTest('login-token').fill(opt.token);
  await byTest('login-submit').click();
  await page.waitForURL((u) => u.pathname === '/' && u.hash.startsWith('#/overview'));
  await byTest('tile-requests').waitFor();
  const cookie = (await context.cookies(ADMIN)).find((c) => c.name === 'sy_session');
  assert(cookie, 'no sy_session cookie after sign-in');
  assert(cookie.httpOnly, 'sy_session cookie is not HttpOnly');
  assert(cookie.sameSite === 'Strict', `sy_session cookie is SameSite=${cookie.sameSite}, expected Strict`);
  // (A substring check only means something for a token of real length.)
  if (opt.token.length >= 12) {
    assert(!cookie.value.includes(opt.token) && !page.url().includes(opt.token), 'the admin token leaked into the cookie or URL');
  }
});

await step('gateway-request', async () => {
  const r = await gatewayChat(null, nonce);
  assert(r.status === 200, `chat completion without a key: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  requestId = r.id;
  assert(requestId, 'the gateway answered without x-switchyard-request-id');
});

await step('requests-list', async () => {
  await go('requests', byTest('requests-table'));
  // Log records are written off the hot path; refresh until it shows up.
  await until(`request ${requestId} in the Requests table`, async () => {
    await byTest('requests-refresh').click();
    await settled('requests-table');
    return (await page.locator(`[data-testid="request-row"][data-id="${requestId}"]`).count()) > 0;
  });
});

await step('requests-filter', async () => {
  await byTest('filter-meta-add').click();
  await byTest('filter-meta-tag').last().fill('team');
  await byTest('filter-meta-value').last().fill(TAG);
  await byTest('filter-apply').click();
  await page.waitForFunction(() => decodeURIComponent(location.hash).includes('metadata.team=browser-test'));
  await settled('requests-table');
  const row = page.locator(`[data-testid="request-row"][data-id="${requestId}"]`);
  await row.waitFor();
  const tags = await page.locator('[data-testid="request-row"]').evaluateAll((rows) => rows.map((r) => r.lastElementChild.textContent));
  assert(tags.length > 0, 'no rows after filtering');
  for (const t of tags) assert(t.includes(`team=${TAG}`), `a row without team=${TAG} survived the filter: "${t}"`);
  await snapshot('requests');
});

await step('request-detail', async () => {
  await page.locator(`[data-testid="request-row"][data-id="${requestId}"] td`).nth(2).click();
  await page.waitForFunction((id) => location.hash === `#/requests/${encodeURIComponent(id)}`, requestId);
  await byTest('attempt-timeline').waitFor();
  const attempts = await byTest('attempt').count();
  assert(attempts >= 1, 'the attempt timeline shows no attempts');
  const tags = await byTest('detail-tags').textContent();
  assert(tags.includes(`team=${TAG}`), `detail tags do not show team=${TAG}: "${tags}"`);
  await byTest('detail-usage').waitFor();
  await snapshot('request-detail');
  await byTest('detail-back').click();
  await page.waitForFunction(() => location.hash.startsWith('#/requests?'));
  await byTest('requests-table').waitFor();
});

await step('usage', async () => {
  await go('usage', byTest('usage-table'));
  for (const d of ['provider', 'model', 'key', 'route', 'status']) await byTest(`group-${d}`).uncheck();
  await byTest('group-metadata').fill('team');
  await byTest('usage-apply').click();
  await settled('usage-table');
  const row = page.locator(`[data-testid="usage-row"][data-group="${TAG}"]`);
  await until(`the ${TAG} row in Usage`, async () => (await row.count()) > 0, 30_000, 500);
  const cost = (await row.locator('[data-metric="cost_usd"]').textContent()).trim();
  assert(/^\$\d/.test(cost), `usage row for ${TAG} has no cost: "${cost}"`);
  const requests = Number((await row.locator('[data-metric="requests"]').textContent()).replace(/\D/g, ''));
  assert(requests >= 1, `usage row for ${TAG} counts ${requests} requests`);
  await byTest('measure-tokens').check();
  await byTest('measure-cost').check();
  const [download] = await Promise.all([page.waitForEvent('download'), byTest('usage-export').click()]);
  const csv = await fs.readFile(await download.path(), 'utf8');
  assert(csv.split(/\r?\n/)[0].startsWith('metadata.team,requests'), `unexpected CSV header: ${csv.split(/\r?\n/)[0]}`);
  assert(csv.includes(`\n${TAG},`), `CSV export has no ${TAG} row`);
  await snapshot('usage');
});

await step('key-create', async () => {
  await go('keys', byTest('keys-table'));
  keyName = `browser-test-${nonce}`;
  await byTest('key-create-name').fill(keyName);
  // A bad field comes back as a 400 naming it; the message shows beside it.
  await byTest('key-create-models').fill('not a glob');
  await byTest('key-create-submit').click();
  await byTest('field-error-key-create-models').filter({ hasText: /.+/ }).waitFor();
  await byTest('key-create-models').fill('');
  await byTest('key-create-rpm').fill('60');
  await byTest('key-create-submit').click();
  const dialog = byTest('secret-dialog');
  await dialog.waitFor();
  assert(/not be shown again/i.test(await dialog.textContent()), 'the secret dialog does not say the key is shown once');
  keySecret = await byTest('secret-value').inputValue();
  assert(/^sk-sy-/.test(keySecret), `the dialog does not show an sk-sy- key: "${keySecret.slice(0, 8)}…"`);
  await byTest('secret-copy').click();
  await byTest('secret-copy-status').filter({ hasText: /copied/i }).waitFor();
  const clip = await page.evaluate(() => navigator.clipboard.readText());
  assert(clip === keySecret, 'the clipboard does not hold the key shown in the dialog');
  await byTest('secret-close').click();
  await dialog.waitFor({ state: 'detached' });
  const leftovers = await page.evaluate((s) => ({
    html: document.documentElement.outerHTML.includes(s),
    inputs: [...document.querySelectorAll('input,textarea')].some((i) => i.value.includes(s)),
    storage: JSON.stringify({ ...localStorage }).includes(s) || JSON.stringify({ ...sessionStorage }).includes(s),
    url: location.href.includes(s),
  }), keySecret);
  for (const [where, found] of Object.entries(leftovers)) assert(!found, `the key secret is still in the page (${where}) after the dialog closed`);
  await page.locator(`[data-testid="key-row"][data-key-name="${keyName}"]`).waitFor();
});

await step('key-use', async () => {
  const r = await gatewayChat(keySecret, `${nonce}-key`);
  assert(r.status === 200, `chat completion with the new key: HTTP ${r.status}: ${r.text.slice(0, 300)}`);
});

await step('key-edit', async () => {
  const row = page.locator(`[data-testid="key-row"][data-key-name="${keyName}"]`);
  await row.getByTestId('key-edit-open').click();
  await byTest('key-edit-rpm').fill('120');
  await byTest('key-edit-submit').click();
  await row.getByTestId('key-limits').filter({ hasText: '120 req/min' }).waitFor();
});

await step('key-revoke', async () => {
  const row = page.locator(`[data-testid="key-row"][data-key-name="${keyName}"]`);
  await row.getByTestId('key-revoke').click();
  await byTest('confirm-dialog').waitFor();
  // Escape cancels; nothing is revoked.
  await page.keyboard.press('Escape');
  await byTest('confirm-dialog').waitFor({ state: 'detached' });
  assert(await row.count() === 1, 'the key disappeared after cancelling the revoke dialog');
  // Confirm with the keyboard only: focus starts on Cancel, Tab to Revoke.
  await row.getByTestId('key-revoke').click();
  await byTest('confirm-dialog').waitFor();
  const focused = await page.evaluate(() => document.activeElement?.dataset.testid);
  assert(focused === 'confirm-cancel', `the revoke dialog should focus Cancel first, focused: ${focused}`);
  await page.keyboard.press('Tab');
  assert(await page.evaluate(() => document.activeElement?.dataset.testid) === 'confirm-ok', 'Tab does not reach the confirm button');
  await page.keyboard.press('Enter');
  await byTest('confirm-dialog').waitFor({ state: 'detached' });
  await row.waitFor({ state: 'detached' });
  await until('the revoked key to be refused', async () => (await gatewayChat(keySecret, `${nonce}-revoked`)).status === 401, 15_000, 500);
  await snapshot('keys');
});

await step('cache-purge', async () => {
  await go('cache', byTest('cache-table'));
  await until('the cached answer in the Cache table', async () => (await byTest('cache-row').count()) > 0, 15_000, 500);
  await snapshot('cache');
  await byTest('cache-purge-all').click();
  await byTest('confirm-dialog').waitFor();
  await byTest('confirm-ok').click();
  await byTest('cache-result').filter({ hasText: /Deleted [1-9]\d*/ }).waitFor();
  await settled('cache-table');
  await until('an empty cache table', async () => (await byTest('cache-row').count()) === 0, 15_000, 500);
  const left = await pageFetch('/admin/v1/cache', {});
  assert(left.status === 200 && JSON.parse(left.text).data.length === 0, `cache not empty after purge: ${left.text.slice(0, 200)}`);
});

await step('approvals', async () => {
  // A tool write held for a person (the gateway serves without keys here).
  const held = await fetch(`${GATEWAY}/tools/echo/items`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', prefer: 'respond-async' },
    body: JSON.stringify({ title: `held-${nonce}` }),
  });
  assert(held.status === 202, `a held write: HTTP ${held.status}`);
  const { approval_id: id } = await held.json();
  await go('approvals', byTest('approvals-table'));
  const row = page.locator(`[data-testid="approval-row"][data-id="${id}"]`);
  await until('the held write in the Approvals table', async () => {
    await byTest('approvals-refresh').click();
    return (await row.count()) > 0;
  }, 15_000, 500);
  assert((await row.locator('[data-testid="approval-arguments"]').textContent()).includes(`held-${nonce}`), 'the body is not shown');
  await snapshot('approvals');
  await row.locator('[data-testid="approval-reason"]').fill('checked in the browser');
  await row.locator('[data-testid="approval-approve"]').click();
  await byTest('approvals-result').filter({ hasText: /Approved/ }).waitFor();
  const after = await pageFetch('/admin/v1/approvals', {});
  const a = JSON.parse(after.text).data.find((x) => x.id === id);
  assert(a && a.state === 'approved' && a.decided_by === 'dashboard' && a.reason === 'checked in the browser', `after approving: ${after.text.slice(0, 300)}`);
  // An MCP tool whose definition changed (seeded by the Rust side) is
  // accepted from the same page.
  const change = page.locator('[data-testid="mcp-change-row"]').first();
  await until('the changed MCP tool', async () => (await change.count()) > 0, 15_000, 500);
  assert((await change.locator('[data-testid="mcp-change-definition"]').textContent()).includes('id_rsa'), 'the new definition is not shown');
  const changeId = await change.getAttribute('data-id');
  await change.locator('[data-testid="mcp-change-accept"]').click();
  await byTest('approvals-result').filter({ hasText: /Accepted/ }).waitFor();
  const changes = await pageFetch('/admin/v1/mcp/changes', {});
  const c = JSON.parse(changes.text).data.find((x) => x.id === changeId);
  assert(c && c.state === 'accepted' && c.decided_by === 'dashboard', `after accepting: ${changes.text.slice(0, 300)}`);
});

await step('providers', async () => {
  await go('providers', byTest('providers-list'));
  await page.locator('[data-testid^="provider-"]').first().waitFor();
  await snapshot('providers');
});

await step('overview', async () => {
  await go('overview', byTest('tile-requests'));
  await page.locator('[data-testid="chart-requests"] svg').waitFor();
  const n = Number((await byTest('tile-requests').locator('.value').textContent()).replace(/\D/g, ''));
  assert(n >= 1, `overview counts ${n} requests`);
  await byTest('top-models').waitFor();
  await snapshot('overview');
});

await step('dark-mode', async () => {
  await byTest('theme-toggle').click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'dark');
  await page.reload();
  await byTest('tile-requests').waitFor();
  assert(await page.evaluate(() => document.documentElement.dataset.theme) === 'dark', 'the dark theme did not survive a reload');
  await page.locator('[data-testid="chart-requests"] svg').waitFor();
  await snapshot('overview-dark');
  await byTest('theme-toggle').click();
  await page.waitForFunction(() => document.documentElement.dataset.theme === 'light');
});

await step('narrow-window', async () => {
  await page.setViewportSize({ width: 400, height: 800 });
  for (const nav of ['overview', 'requests', 'usage', 'providers', 'keys', 'cache']) {
    await go(nav);
    await page.waitForTimeout(200);
    const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert(over <= 1, `#/${nav} scrolls sideways by ${over}px at 400px wide`);
    await checkPage(`${nav}-narrow`);
    if (nav === 'overview' || nav === 'requests') await snapshot(`${nav}-narrow`);
  }
  await page.setViewportSize({ width: 1280, height: 800 });
});

await step('sign-out', async () => {
  await byTest('sign-out').click();
  await page.waitForURL((u) => u.pathname === '/login');
  assert((await pageFetch('/admin/session', {})).status === 401, 'the session still works after signing out');
  await page.goto(`${ADMIN}/#/keys`);
  await page.waitForURL((u) => u.pathname === '/login');
});

await step('csrf', async () => {
  await signIn();
  const body = JSON.stringify({ name: `csrf-probe-${nonce}` });
  const noToken = await pageFetch('/admin/v1/keys', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert(noToken.status === 403, `POST /admin/v1/keys without x-csrf-token: expected 403, got ${noToken.status}`);
  const plain = await pageFetch('/admin/v1/keys', { method: 'POST', headers: { 'content-type': 'text/plain' }, body });
  assert(plain.status === 403, `a form-style (text/plain) POST without x-csrf-token: expected 403, got ${plain.status}`);
  const list = await pageFetch('/admin/v1/keys?include_revoked=true', {});
  assert(!list.text.includes('csrf-probe'), 'a key was created without a CSRF token');
  const { csrf } = JSON.parse((await pageFetch('/admin/session', {})).text);
  await context.clearCookies();
  const url = new URL(ADMIN);
  await context.addCookies([{ name: 'sy_session', value: 'not-a-session', domain: url.hostname, path: '/', httpOnly: true, sameSite: 'Strict' }]);
  const wrong = await pageFetch('/admin/v1/keys', { method: 'POST', headers: { 'content-type': 'application/json', 'x-csrf-token': csrf }, body });
  assert(wrong.status === 401, `POST /admin/v1/keys with a wrong session: expected 401, got ${wrong.status}`);
  assert((await pageFetch('/admin/v1/keys', {})).status === 401, 'GET /admin/v1/keys with a wrong session is not 401');
});

await step('no-secrets-seen', async () => {
  assert(responsesChecked > 0 && pagesChecked > 0, 'nothing was checked for secrets');
  console.log(`  checked ${responsesChecked} responses and ${pagesChecked} pages for ${FORBID.length} forbidden secrets`
    + (unreadable ? ` (${unreadable} bodies left behind by navigation could not be read)` : ''));
});

closing = true;
await withTimeout(browser.close(), 15_000).catch(() => {});
process.exit(0);
