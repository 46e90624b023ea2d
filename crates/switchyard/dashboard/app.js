// The dashboard shell: checks the session, then routes "#/<page>/<arg>?query"
// to a page module. A page exports `render(root, arg)` and may return a
// cleanup function (to stop polling) that runs when the operator leaves it.

import { loadSession, signOut } from './api.js';
import { clear, errorBox, h } from './ui.js';

const PAGES = {
  overview: ['Overview', () => import('./overview.js')],
  requests: ['Requests', () => import('./requests.js')],
  usage: ['Usage', () => import('./usage.js')],
  providers: ['Providers', () => import('./providers.js')],
  keys: ['Keys', () => import('./keys.js')],
  cache: ['Cache', () => import('./cache.js')],
  approvals: ['Approvals', () => import('./approvals.js')],
};

const main = document.getElementById('main');
let cleanup = null;
let generation = 0;
let firstRoute = true;

function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '').split('?')[0];
  const [page, ...rest] = raw.split('/');
  return { page: PAGES[page] ? page : null, arg: rest.length ? decodeURIComponent(rest.join('/')) : null };
}

async function route() {
  const { page, arg } = parseHash();
  if (!page) {
    location.replace('#/overview');
    return;
  }
  const gen = ++generation;
  if (cleanup) {
    try { cleanup(); } catch { /* the old page is gone anyway */ }
    cleanup = null;
  }
  const [title, load] = PAGES[page];
  document.title = `${title} · Switchyard`;
  for (const a of document.querySelectorAll('nav a[data-route]')) {
    if (a.dataset.route === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const root = h('div', { 'data-page': page, 'aria-busy': 'true' });
  clear(main).append(root);
  try {
    const mod = await load();
    if (gen !== generation) return;
    const done = await mod.render(root, arg);
    if (gen !== generation) {
      if (typeof done === 'function') done();
      return;
    }
    cleanup = typeof done === 'function' ? done : null;
  } catch (e) {
    if (gen === generation) root.append(errorBox(e));
  } finally {
    root.setAttribute('aria-busy', 'false');
  }
  // Move focus to the new page for keyboard and screen-reader users, but
  // not on first load, where the browser's own focus order should start.
  if (!firstRoute && gen === generation) main.focus({ preventScroll: true });
  firstRoute = false;
}

function setupTheme() {
  const btn = document.getElementById('theme-toggle');
  const label = () => {
    const dark = window.syTheme.current() === 'dark';
    btn.textContent = dark ? 'Light theme' : 'Dark theme';
    btn.setAttribute('aria-label', dark ? 'Switch to light theme' : 'Switch to dark theme');
  };
  btn.addEventListener('click', () => {
    window.syTheme.set(window.syTheme.current() === 'dark' ? 'light' : 'dark');
    label();
  });
  new MutationObserver(label).observe(document.documentElement, { attributes: true, attributeFilter: ['data-theme'] });
  label();
}

async function start() {
  setupTheme();
  document.getElementById('sign-out').addEventListener('click', () => signOut());
  try {
    await loadSession();
  } catch (e) {
    clear(main).append(errorBox(e));
    return;
  }
  window.addEventListener('hashchange', route);
  route();
}

start();
