// Requests: the request log, newest first, with filters kept in the URL
// ("#/requests?provider=openai&metadata.team=search") and cursor paging.

import { api } from './api.js';
import {
  RANGES, announce, clear, empty, errorBox, field, fmtInt, fmtMs, fmtTime, fmtUsd, h, hashQuery, labelled,
} from './ui.js';

const TEXT_FILTERS = [
  ['key', 'Key', 'key id'],
  ['route', 'Route', 'e.g. smart'],
  ['provider', 'Provider', 'e.g. openai'],
  ['model', 'Model', 'e.g. gpt-4o'],
  ['status', 'Status', 'e.g. 429'],
  ['error_class', 'Error class', 'e.g. timeout'],
  ['trace_id', 'Trace id', '32 hex digits'],
];

/// The list's last URL, so the detail page can link back to it.
export let lastList = '#/requests';

const COLUMNS = ['Time', 'Status', 'Model', 'Key', 'Latency', 'Tokens in / out', 'Cost', 'Cache', 'Tags'];

export async function render(root, id) {
  if (id) return (await import('./request.js')).render(root, id);

  const q = hashQuery();
  const inputs = {};
  const metaRows = h('div', { class: 'stack', 'data-testid': 'metadata-filters' });
  const tbody = h('tbody', { 'data-testid': 'requests-body' });
  const more = h('button', { type: 'button', hidden: true, 'data-testid': 'load-more', onclick: () => load(true) }, 'Load more');
  const count = h('p', { class: 'muted', 'aria-live': 'polite', 'data-testid': 'requests-count' });
  const errors = h('div');
  let cursor = null;
  let shown = 0;
  let table = null;
  let keyNames = new Map();

  for (const [name, label, placeholder] of TEXT_FILTERS) {
    inputs[name] = h('input', {
      name, value: q.get(name) || '', placeholder, autocomplete: 'off', 'data-testid': `filter-${name}`,
      list: name === 'key' ? 'dl-keys' : name === 'provider' ? 'dl-providers' : null,
      inputmode: name === 'status' ? 'numeric' : null,
    });
  }
  inputs.range = h('select', { name: 'range', 'data-testid': 'filter-range' },
    h('option', { value: '' }, 'Any time'),
    ['15m', '1h', '24h', '7d'].map((r) => h('option', { value: r, selected: q.get('range') === r }, `Last ${RANGES[r].label}`)));

  function metaRow(tag = '', value = '') {
    const tagIn = h('input', { value: tag, placeholder: 'tag, e.g. team', autocomplete: 'off', 'data-testid': 'filter-meta-tag' });
    const valIn = h('input', { value, placeholder: 'value', autocomplete: 'off', 'data-testid': 'filter-meta-value' });
    const row = h('div', { class: 'form-grid meta-row' },
      field('Metadata tag', tagIn),
      field('Tag value', valIn),
      h('div', {}, h('button', {
        type: 'button', class: 'small', 'aria-label': 'Remove this metadata filter',
        onclick: () => { row.remove(); addBtn.focus(); },
      }, 'Remove')));
    metaRows.append(row);
    return tagIn;
  }
  const addBtn = h('button', { type: 'button', class: 'small', 'data-testid': 'filter-meta-add', onclick: () => metaRow().focus() },
    'Add metadata filter');
  for (const [k, v] of q) if (k.startsWith('metadata.')) metaRow(k.slice(9), v);

  const form = h('form', {
    class: 'card filters', 'aria-label': 'Filters', 'data-testid': 'requests-filters',
    onsubmit: (ev) => {
      ev.preventDefault();
      const params = currentParams();
      const s = params.toString();
      history.pushState(null, '', `#/requests${s ? '?' + s : ''}`);
      load(false);
    },
  },
  h('div', { class: 'form-grid' },
    TEXT_FILTERS.map(([name, label]) => field(label, inputs[name])),
    field('Time', inputs.range)),
  metaRows,
  h('div', { class: 'actions' },
    addBtn,
    h('button', { type: 'submit', class: 'primary', 'data-testid': 'filter-apply' }, 'Apply filters'),
    h('button', {
      type: 'button', 'data-testid': 'filter-clear',
      onclick: () => {
        for (const el of Object.values(inputs)) el.value = '';
        clear(metaRows);
        form.requestSubmit();
      },
    }, 'Clear')));

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Requests'),
      h('button', { type: 'button', 'data-testid': 'requests-refresh', onclick: () => load(false) }, 'Refresh')),
    form,
    h('datalist', { id: 'dl-keys' }),
    h('datalist', { id: 'dl-providers' }),
    errors,
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Requests table' },
      table = h('table', { class: 'cards', 'data-testid': 'requests-table', 'aria-busy': 'false' },
        h('thead', {}, h('tr', {},
          COLUMNS.map((t, i) =>
            h('th', { scope: 'col', class: i >= 4 && i <= 6 ? 'num' : null }, t)))),
        tbody)),
    h('div', { class: 'actions' }, more, count));

  function currentParams() {
    const p = new URLSearchParams();
    for (const [name] of TEXT_FILTERS) if (inputs[name].value.trim()) p.set(name, inputs[name].value.trim());
    if (inputs.range.value) p.set('range', inputs.range.value);
    for (const row of metaRows.querySelectorAll('.meta-row')) {
      const [tag, val] = row.querySelectorAll('input');
      if (tag.value.trim()) p.append(`metadata.${tag.value.trim()}`, val.value.trim());
    }
    return p;
  }

  async function load(append) {
    const params = currentParams();
    lastList = `#/requests${params.toString() ? '?' + params : ''}`;
    const query = [];
    for (const [k, v] of params) if (k !== 'range') query.push([k, v]);
    const r = RANGES[params.get('range')];
    if (r) query.push(['since', Date.now() - r.ms]);
    query.push(['limit', 50]);
    if (append && cursor) query.push(['cursor', cursor]);
    more.disabled = true;
    table.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api('/admin/v1/logs', { query });
    } catch (e) {
      clear(errors).append(errorBox(e));
      more.disabled = false;
      return;
    } finally {
      table.setAttribute('aria-busy', 'false');
    }
    clear(errors);
    if (!append) { clear(tbody); shown = 0; }
    const rows = page.data || [];
    tbody.append(...rows.map(row));
    shown += rows.length;
    if (!shown) tbody.append(empty(9, 'No requests match these filters.'));
    cursor = page.next_cursor || null;
    more.hidden = !cursor;
    more.disabled = false;
    count.textContent = `Showing ${fmtInt(shown)} request${shown === 1 ? '' : 's'}${cursor ? ' (more available)' : ''}.`;
    if (append) announce(`Loaded ${rows.length} more requests.`);
  }

  function row(r) {
    const href = `#/requests/${encodeURIComponent(r.id)}`;
    const ok = r.status >= 200 && r.status < 300 && r.state !== 'interrupted';
    const served = r.provider && r.model ? `${r.provider}/${r.model}` : null;
    const tags = Object.entries(r.metadata || {});
    return labelled(h('tr', {
      class: 'clickable', 'data-testid': 'request-row', 'data-id': r.id,
      onclick: (ev) => { if (!ev.target.closest('a')) location.hash = href; },
    },
    h('td', { class: 'nowrap' }, h('a', { href, 'aria-label': `Request ${r.id} at ${fmtTime(r.time_ms)}` }, fmtTime(r.time_ms))),
    h('td', { class: 'nowrap' },
      h('span', { class: `badge ${ok ? 'ok' : 'err'}` }, r.status ?? '—'),
      r.error_class ? [' ', h('span', { class: 'muted' }, r.error_class)] : null,
      r.state === 'interrupted' ? [' ', h('span', { class: 'badge warn' }, 'interrupted')] : null),
    h('td', {}, r.requested_model || '—',
      served && served !== r.requested_model ? h('div', { class: 'muted' }, `→ ${served}`) : null,
      r.stream ? h('div', { class: 'muted' }, 'stream') : null),
    h('td', { class: 'mono' }, r.key_id ? (keyNames.get(r.key_id) || r.key_id) : h('span', { class: 'muted' }, 'anonymous')),
    h('td', { class: 'num' }, fmtMs(r.latency_ms)),
    h('td', { class: 'num' }, `${fmtInt(r.input_tokens)} / ${fmtInt(r.output_tokens)}`),
    h('td', { class: 'num' }, fmtUsd(r.cost_usd)),
    h('td', {}, r.cache ? h('span', { class: `badge ${r.cache === 'HIT' ? 'ok' : ''}` }, r.cache) : '—'),
    h('td', {}, h('div', { class: 'tags' }, tags.map(([k, v]) => h('span', { class: 'tag' }, `${k}=${v}`))))), COLUMNS);
  }

  // Suggestions for the key and provider filters; the page works without them.
  const suggestions = Promise.allSettled([
    api('/admin/v1/keys', { query: { include_revoked: 'true' } }),
    api('/admin/v1/providers'),
  ]).then(([k, p]) => {
    if (k.status === 'fulfilled') {
      const all = k.value.data || [];
      keyNames = new Map(all.map((x) => [x.id, x.name]));
      root.querySelector('#dl-keys')?.append(...all.map((x) => h('option', { value: x.id }, x.revoked ? `${x.name} (revoked)` : x.name)));
    }
    if (p.status === 'fulfilled') {
      root.querySelector('#dl-providers')?.append(...(p.value.providers || []).map((x) => h('option', { value: x.name })));
    }
  });
  await Promise.race([suggestions, new Promise((r) => setTimeout(r, 500))]);
  await load(false);
}
