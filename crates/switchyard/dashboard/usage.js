// Usage: sums of requests, tokens and cost grouped by any of provider, model,
// key, route, status and metadata tags, over time buckets; CSV export of the
// table is done in the browser.

import { api } from './api.js';
import { chartCard } from './chart.js';
import {
  BUCKET_MS, RANGES, clear, empty, errorBox, field, fmtCompact, fmtInt, fmtUsd, h, hashQuery,
  replaceHashQuery, segmented,
} from './ui.js';

const DIMS = ['provider', 'model', 'key', 'route', 'status'];
const METRICS = [
  ['requests', 'Requests', fmtInt],
  ['errors', 'Errors', fmtInt],
  ['input_tokens', 'Input tokens', fmtInt],
  ['output_tokens', 'Output tokens', fmtInt],
  ['cached_tokens', 'Cached tokens', fmtInt],
  ['cost_usd', 'Cost', fmtUsd],
  ['saved_usd', 'Saved', fmtUsd],
];
const TOP = 7;

export async function render(root) {
  const q = hashQuery();
  const initial = (q.get('group_by') ?? 'provider').split(',').map((x) => x.trim()).filter(Boolean);
  const state = {
    dims: DIMS.filter((d) => initial.includes(d)),
    tags: initial.filter((d) => d.startsWith('metadata.')).map((d) => d.slice(9)),
    bucket: q.get('bucket') === 'day' ? 'day' : 'hour',
    range: ['24h', '7d', '30d'].includes(q.get('range')) ? q.get('range') : '24h',
    measure: q.get('measure') === 'tokens' ? 'tokens' : 'cost',
  };
  let rows = [];
  let groupBy = [];
  let keyNames = new Map();
  let since = 0;
  let until = 0;
  let gen = 0;

  const checks = DIMS.map((d) => h('label', {},
    h('input', { type: 'checkbox', name: 'group_by', value: d, checked: state.dims.includes(d), 'data-testid': `group-${d}`, onchange: apply }),
    d));
  const tagsIn = h('input', {
    value: state.tags.join(', '), placeholder: 'e.g. team, user', autocomplete: 'off', 'data-testid': 'group-metadata',
    onchange: apply,
  });
  const bucketSel = h('select', { 'data-testid': 'usage-bucket', onchange: apply },
    h('option', { value: 'hour', selected: state.bucket === 'hour' }, 'Hour'),
    h('option', { value: 'day', selected: state.bucket === 'day' }, 'Day'));
  const rangeSel = h('select', { 'data-testid': 'usage-range', onchange: apply },
    ['24h', '7d', '30d'].map((r) => h('option', { value: r, selected: state.range === r }, `Last ${RANGES[r].label}`)));
  const measure = segmented('Chart shows', 'measure', [['cost', 'Cost'], ['tokens', 'Tokens']], state.measure, (v) => {
    state.measure = v;
    syncUrl();
    drawChart();
  }, 'measure');

  const errors = h('div');
  const chart = chartCard('Usage over time', 'usage-chart');
  const thead = h('thead');
  const tbody = h('tbody', { 'data-testid': 'usage-body' });
  const tfoot = h('tfoot');
  const table = h('table', { 'data-testid': 'usage-table', 'aria-busy': 'false' }, thead, tbody, tfoot);
  const exportBtn = h('button', { type: 'button', 'data-testid': 'usage-export', onclick: exportCsv }, 'Export CSV');

  root.append(
    h('div', { class: 'page-head' }, h('h1', {}, 'Usage'), exportBtn),
    h('form', { class: 'card filters', 'aria-label': 'Grouping', 'data-testid': 'usage-form', onsubmit: (ev) => { ev.preventDefault(); apply(); } },
      h('fieldset', {}, h('legend', {}, 'Group by'), h('div', { class: 'checks' }, checks)),
      h('div', { class: 'form-grid' },
        field('Metadata tags', tagsIn, { hint: 'Comma-separated tag names' }),
        field('Bucket', bucketSel),
        field('Time range', rangeSel)),
      h('div', { class: 'actions' },
        h('button', { type: 'submit', class: 'primary', 'data-testid': 'usage-apply' }, 'Apply'),
        h('span', { class: 'muted spacer' }, 'Chart shows'), measure)),
    errors,
    chart.card,
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Usage table' },
      table));

  function readForm() {
    state.dims = checks.map((l) => l.querySelector('input')).filter((c) => c.checked).map((c) => c.value);
    state.tags = tagsIn.value.split(',').map((t) => t.trim().replace(/^metadata\./, '')).filter(Boolean);
    state.bucket = bucketSel.value;
    state.range = rangeSel.value;
  }

  function syncUrl() {
    const p = new URLSearchParams({
      group_by: [...state.dims, ...state.tags.map((t) => `metadata.${t}`)].join(','),
      bucket: state.bucket, range: state.range, measure: state.measure,
    });
    replaceHashQuery('usage', p);
  }

  async function apply() {
    readForm();
    syncUrl();
    await load();
  }

  async function load() {
    const mine = ++gen;
    groupBy = [...state.dims, ...state.tags.map((t) => `metadata.${t}`)];
    until = Date.now();
    since = until - RANGES[state.range].ms;
    let data;
    table.setAttribute('aria-busy', 'true');
    try {
      data = await api('/admin/v1/usage', { query: { group_by: groupBy.join(','), since, until, bucket: state.bucket } });
    } catch (e) {
      if (mine === gen) clear(errors).append(errorBox(e));
      return;
    } finally {
      if (mine === gen) table.setAttribute('aria-busy', 'false');
    }
    if (mine !== gen) return;
    clear(errors);
    rows = data.data || [];
    drawTable();
    drawChart();
  }

  function label(g) {
    if (!groupBy.length) return 'All requests';
    return groupBy.map((d) => {
      const v = g[d];
      if (v === null || v === undefined || v === '') return '(none)';
      return d === 'key' ? (keyNames.get(v) || v) : String(v);
    }).join(' · ');
  }

  function groupId(r) {
    return JSON.stringify(groupBy.map((d) => r.group?.[d] ?? null));
  }

  /// Rows summed over buckets, one per group, most expensive first.
  function totals() {
    const by = new Map();
    for (const r of rows) {
      const id = groupId(r);
      let t = by.get(id);
      if (!t) {
        t = { id, group: r.group || {}, label: label(r.group || {}) };
        for (const [m] of METRICS) t[m] = 0;
        by.set(id, t);
      }
      for (const [m] of METRICS) t[m] += r[m] || 0;
    }
    return [...by.values()].sort((a, b) => b.cost_usd - a.cost_usd || b.requests - a.requests);
  }

  function drawTable() {
    const list = totals();
    const dimHeads = groupBy.length ? groupBy : ['group'];
    clear(thead).append(h('tr', {},
      dimHeads.map((d) => h('th', { scope: 'col' }, d)),
      METRICS.map(([, t]) => h('th', { scope: 'col', class: 'num' }, t))));
    clear(tbody).append(...(list.length ? list.map((t) => h('tr', { 'data-testid': 'usage-row', 'data-group': t.label },
      groupBy.length
        ? groupBy.map((d) => h('td', {}, t.group[d] == null || t.group[d] === '' ? h('span', { class: 'muted' }, '(none)')
          : d === 'key' ? (keyNames.get(t.group[d]) || t.group[d]) : String(t.group[d])))
        : h('td', {}, 'All requests'),
      METRICS.map(([m, , f]) => h('td', { class: 'num', 'data-metric': m }, f(t[m]))))) : [empty(dimHeads.length + METRICS.length, 'No usage in this range.')]));
    const sum = (m) => list.reduce((a, t) => a + t[m], 0);
    clear(tfoot).append(list.length > 1 ? h('tr', {},
      h('td', { colspan: dimHeads.length }, 'Total'),
      METRICS.map(([m, , f]) => h('td', { class: 'num' }, f(sum(m))))) : '');
  }

  function drawChart() {
    const value = (r) => (state.measure === 'cost' ? r.cost_usd || 0 : (r.input_tokens || 0) + (r.output_tokens || 0));
    const timed = rows.filter((r) => r.bucket != null);
    const times = [...new Set(timed.map((r) => r.bucket))].sort((a, b) => a - b);
    const index = new Map(times.map((t, i) => [t, i]));
    const list = totals().sort((a, b) => (state.measure === 'cost' ? b.cost_usd - a.cost_usd
      : b.input_tokens + b.output_tokens - a.input_tokens - a.output_tokens));
    const top = list.slice(0, TOP);
    const series = top.map((t, i) => ({ name: t.label, values: times.map(() => 0), color: i }));
    const other = { name: 'Other', values: times.map(() => 0), color: 8 };
    const topIds = top.map((t) => t.id);
    for (const r of timed) {
      const i = topIds.indexOf(groupId(r));
      (i >= 0 ? series[i] : other).values[index.get(r.bucket)] += value(r);
    }
    if (list.length > TOP) series.push(other);
    chart.draw({
      kind: 'bar', times, since, until, bucketMs: BUCKET_MS[state.bucket], series,
      format: state.measure === 'cost' ? fmtUsd : fmtCompact, counts: state.measure !== 'cost',
      empty: 'No usage in this range',
    });
  }

  function exportCsv() {
    const list = totals();
    const cell = (v) => {
      let t = v === null || v === undefined ? '' : String(v);
      // Tags come from clients: keep a spreadsheet from reading them as formulas.
      if (typeof v === 'string' && /^[=+\-@\t\r]/.test(t)) t = `'${t}`;
      return /[",\n\r]/.test(t) ? `"${t.replace(/"/g, '""')}"` : t;
    };
    const lines = [[...(groupBy.length ? groupBy : ['group']), ...METRICS.map(([m]) => m)].map(cell).join(',')];
    for (const t of list) {
      const dims = groupBy.length ? groupBy.map((d) => t.group[d]) : ['all'];
      lines.push([...dims, ...METRICS.map(([m]) => Number(t[m].toPrecision(12)))].map(cell).join(','));
    }
    const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv;charset=utf-8' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `switchyard-usage-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  try {
    const all = (await api('/admin/v1/keys', { query: { include_revoked: 'true' } })).data || [];
    keyNames = new Map(all.map((k) => [k.id, k.name]));
  } catch { /* names are a nicety; ids still show */ }
  await load();
}
