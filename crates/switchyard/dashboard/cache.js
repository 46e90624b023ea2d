// Cache: entries (metadata only) by namespace with size and expiry; purge one
// entry, a namespace, or everything, each after confirmation.

import { api } from './api.js';
import {
  announce, clear, confirmDialog, empty, errorBox, field, fmtBytes, fmtInt, fmtRel, fmtTime, h, hashQuery, labelled,
  replaceHashQuery,
} from './ui.js';

const COLUMNS = ['Namespace', 'Model', 'Size', 'Created', 'Expires', 'Stream', 'Key hash', ''];

export async function render(root) {
  const nsIn = h('input', {
    value: hashQuery().get('namespace') || '', placeholder: 'all namespaces', autocomplete: 'off',
    list: 'dl-namespaces', 'data-testid': 'cache-namespace',
  });
  const datalist = h('datalist', { id: 'dl-namespaces' });
  const result = h('div', { class: 'notice ok', role: 'status', 'data-testid': 'cache-result' });
  const errors = h('div');
  const nsBody = h('tbody', { 'data-testid': 'cache-namespaces' });
  const tbody = h('tbody', { 'data-testid': 'cache-body' });
  const more = h('button', { type: 'button', hidden: true, 'data-testid': 'cache-load-more', onclick: () => load(true) }, 'Load more');
  const count = h('p', { class: 'muted', 'aria-live': 'polite' });
  const table = h('table', { class: 'cards', 'data-testid': 'cache-table', 'aria-busy': 'false' },
    h('thead', {}, h('tr', {}, COLUMNS.map((t, i) =>
      h('th', { scope: 'col', class: i === 2 ? 'num' : null }, t === '' ? h('span', { class: 'sr-only' }, 'Actions') : t)))),
    tbody);
  let entries = [];
  let cursor = null;

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Cache'),
      h('div', { class: 'actions' },
        h('button', { type: 'button', 'data-testid': 'cache-refresh', onclick: () => load(false) }, 'Refresh'),
        h('button', { type: 'button', class: 'danger', 'data-testid': 'cache-purge-all', onclick: purgeAll }, 'Purge all…'))),
    h('form', {
      class: 'card', 'aria-label': 'Filter', onsubmit: (ev) => {
        ev.preventDefault();
        replaceHashQuery('cache', new URLSearchParams(nsIn.value.trim() ? { namespace: nsIn.value.trim() } : {}));
        load(false);
      },
    }, h('div', { class: 'inline-form' }, field('Namespace', nsIn),
      h('button', { type: 'submit', class: 'primary', 'data-testid': 'cache-apply' }, 'Show entries')), datalist),
    result,
    errors,
    h('section', { class: 'card', 'aria-labelledby': 'ns-title' },
      h('h2', { id: 'ns-title' }, 'Namespaces'),
      h('p', { class: 'muted' }, 'Counted over the entries loaded below.'),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Namespaces table' },
        h('table', {},
          h('thead', {}, h('tr', {}, ['Namespace', 'Entries', 'Size', ''].map((t, i) =>
            h('th', { scope: 'col', class: i === 1 || i === 2 ? 'num' : null }, t === '' ? h('span', { class: 'sr-only' }, 'Actions') : t)))),
          nsBody))),
    h('h2', {}, 'Entries'),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Cache entries table' },
      table),
    h('div', { class: 'actions' }, more, count));

  async function load(append) {
    const query = { namespace: nsIn.value.trim(), limit: 100 };
    if (append && cursor) query.cursor = cursor;
    more.disabled = true;
    table.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('/admin/v1/cache', { query });
    } catch (e) {
      clear(errors).append(errorBox(e));
      more.disabled = false;
      return;
    } finally {
      table.setAttribute('aria-busy', 'false');
    }
    clear(errors);
    entries = append ? entries.concat(page.data || []) : (page.data || []);
    cursor = page.next_cursor || null;
    more.hidden = !cursor;
    more.disabled = false;
    draw();
  }

  function draw() {
    const now = Date.now();
    clear(tbody).append(...(entries.length ? entries.map((e) => labelled(h('tr', { 'data-testid': 'cache-row', 'data-id': e.id },
      h('td', { class: 'mono' }, e.namespace),
      h('td', {}, e.requested_model || '—',
        e.provider && e.model && `${e.provider}/${e.model}` !== e.requested_model ? h('div', { class: 'muted' }, `→ ${e.provider}/${e.model}`) : null),
      h('td', { class: 'num' }, fmtBytes(e.size_bytes)),
      h('td', { class: 'nowrap' }, fmtTime(ms(e.created_at))),
      h('td', { class: 'nowrap', title: fmtTime(ms(e.expires_at)) }, e.expires_at ? fmtRel(ms(e.expires_at), now) : 'never'),
      h('td', {}, e.stream ? 'yes' : 'no'),
      h('td', { class: 'mono' }, (e.key_hash || '').slice(0, 12)),
      h('td', {}, h('button', {
        type: 'button', class: 'small', 'data-testid': 'cache-purge-one', 'aria-label': `Purge entry ${e.id}`,
        onclick: () => purge(`/admin/v1/cache/${encodeURIComponent(e.id)}`,
          'Purge this entry?', `The cached answer for ${e.requested_model || 'this request'} in namespace ${e.namespace} will be deleted.`),
      }, 'Purge'))), COLUMNS))
      : [empty(8, 'The cache is empty.')]));

    const byNs = new Map();
    for (const e of entries) {
      const t = byNs.get(e.namespace) || { n: 0, size: 0 };
      t.n += 1;
      t.size += e.size_bytes || 0;
      byNs.set(e.namespace, t);
    }
    clear(nsBody).append(...(byNs.size ? [...byNs].map(([ns, t]) => h('tr', { 'data-testid': 'cache-ns-row', 'data-namespace': ns },
      h('td', { class: 'mono' }, ns),
      h('td', { class: 'num' }, fmtInt(t.n)),
      h('td', { class: 'num' }, fmtBytes(t.size)),
      h('td', {}, h('button', {
        type: 'button', class: 'small', 'data-testid': 'cache-purge-ns', 'aria-label': `Purge namespace ${ns}`,
        onclick: () => purge(`/admin/v1/cache?namespace=${encodeURIComponent(ns)}`,
          `Purge namespace “${ns}”?`, `Every cached answer in namespace ${ns} will be deleted.`),
      }, 'Purge namespace'))))
      : [empty(4, 'No namespaces.')]));
    const known = new Set([...datalist.options].map((o) => o.value));
    datalist.append(...[...byNs.keys()].filter((ns) => !known.has(ns)).map((ns) => h('option', { value: ns })));
    count.textContent = `Showing ${fmtInt(entries.length)} entr${entries.length === 1 ? 'y' : 'ies'}${cursor ? ' (more available)' : ''}.`;
  }

  async function purge(path, title, text) {
    const ok = await confirmDialog({ title, body: h('p', {}, text, ' This cannot be undone.'), confirm: 'Purge' });
    if (!ok) return;
    try {
      const r = await api(path, { method: 'DELETE' });
      const n = r && typeof r.deleted === 'number' ? r.deleted : 0;
      result.textContent = `Deleted ${fmtInt(n)} entr${n === 1 ? 'y' : 'ies'}.`;
      announce(result.textContent);
    } catch (e) {
      clear(errors).append(errorBox(e));
      return;
    }
    await load(false);
  }

  function purgeAll() {
    return purge('/admin/v1/cache', 'Purge the whole cache?', 'Every cached answer in every namespace will be deleted.');
  }

  await load(false);
}

// Cache timestamps may come in seconds or milliseconds; anything before
// 2001 in milliseconds is taken as seconds.
function ms(t) {
  if (t === null || t === undefined) return null;
  return t < 1e12 ? t * 1000 : t;
}
