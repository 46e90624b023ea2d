// Overview: traffic, errors, latency, tokens, cost and cache over a chosen
// range, refreshed every 5 s while the tab is visible.

import { api } from './api.js';
import { chartCard } from './chart.js';
import {
  BUCKET_MS, RANGES, clear, empty, errorBox, fill, fmtCompact, fmtInt, fmtMs, fmtPct, fmtTime, fmtUsd,
  h, hashQuery, poll, replaceHashQuery, segmented,
} from './ui.js';

const CHOICES = ['15m', '1h', '24h', '7d'];

export async function render(root) {
  let range = CHOICES.includes(hashQuery().get('range')) ? hashQuery().get('range') : '1h';
  let paused = false;

  const status = h('span', { class: 'live', 'data-testid': 'live-status' }, h('span', { class: 'dot' }), h('span', {}, 'Loading…'));
  const pauseBtn = h('button', {
    type: 'button', class: 'small', 'aria-pressed': 'false', 'data-testid': 'live-pause',
    onclick: () => {
      paused = !paused;
      pauseBtn.setAttribute('aria-pressed', String(paused));
      pauseBtn.textContent = paused ? 'Resume live updates' : 'Pause live updates';
      status.classList.toggle('paused', paused);
      if (!paused) refresh();
    },
  }, 'Pause live updates');

  const picker = segmented('Time range', 'range', CHOICES.map((c) => [c, RANGES[c].label]), range, (v) => {
    range = v;
    replaceHashQuery('overview', new URLSearchParams({ range }));
    refresh();
  }, 'range');

  const tiles = h('div', { class: 'tiles', 'data-testid': 'overview-tiles' });
  const errors = h('div');
  const charts = {
    requests: chartCard('Requests', 'chart-requests'),
    errorRate: chartCard('Error rate', 'chart-error-rate'),
    latency: chartCard('Latency', 'chart-latency'),
    ttft: chartCard('Time to first token', 'chart-ttft'),
    tokens: chartCard('Tokens', 'chart-tokens'),
    cost: chartCard('Cost', 'chart-cost'),
    cache: chartCard('Cache hit rate', 'chart-cache'),
  };
  const models = h('tbody');
  const providers = h('tbody');

  root.append(
    h('div', { class: 'page-head' },
      h('h1', {}, 'Overview'),
      h('div', { class: 'actions' }, picker, status, pauseBtn)),
    errors,
    tiles,
    h('div', { class: 'grid-2' }, Object.values(charts).map((c) => c.card),
      h('section', { class: 'card', 'aria-label': 'Top models', 'data-testid': 'top-models' },
        h('h2', {}, 'Top models'),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Model'), h('th', { scope: 'col', class: 'num' }, 'Requests'),
            h('th', { scope: 'col', class: 'num' }, 'Cost'))),
          models))),
      h('section', { class: 'card', 'aria-label': 'Top providers', 'data-testid': 'top-providers' },
        h('h2', {}, 'Top providers'),
        h('div', { class: 'table-wrap' }, h('table', {},
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Provider'), h('th', { scope: 'col', class: 'num' }, 'Requests'),
            h('th', { scope: 'col', class: 'num' }, 'Errors'), h('th', { scope: 'col', class: 'num' }, 'Cost'))),
          providers))))
  );

  async function refresh() {
    const r = RANGES[range];
    const until = Date.now();
    const since = until - r.ms;
    let data;
    try {
      data = await api('/admin/v1/stats', { query: { since, until, bucket: r.bucket } });
    } catch (e) {
      clear(errors).append(errorBox(e));
      return;
    }
    clear(errors);
    show(data, since, until, BUCKET_MS[r.bucket]);
    status.lastChild.textContent = `${paused ? 'Paused' : 'Live'} · updated ${fmtTime(Date.now()).slice(11)}`;
  }

  function show(data, since, until, bucketMs) {
    const rows = [...(data.data || [])].sort((a, b) => a.bucket - b.bucket);
    const sum = (k) => rows.reduce((a, r) => a + (r[k] || 0), 0);
    const peak = (k) => rows.reduce((a, r) => (r[k] == null ? a : Math.max(a ?? 0, r[k])), null);
    const req = sum('requests');
    const err = sum('errors');
    const col = (f) => rows.map(f);
    const times = col((r) => r.bucket);
    const base = { times, since, until, bucketMs };

    clear(tiles).append(
      tile('Requests', fmtInt(req), null, 'tile-requests'),
      tile('Error rate', req ? fmtPct(err / req) : '—', `${fmtInt(err)} errors`, 'tile-error-rate'),
      tile('p95 latency', fmtMs(peak('p95_latency_ms')), 'highest bucket', 'tile-latency'),
      tile('p95 TTFT', fmtMs(peak('p95_ttft_ms')), 'highest bucket', 'tile-ttft'),
      tile('Tokens', fmtCompact(sum('input_tokens') + sum('output_tokens')),
        `${fmtCompact(sum('input_tokens'))} in · ${fmtCompact(sum('output_tokens'))} out`, 'tile-tokens'),
      tile('Cost', fmtUsd(sum('cost_usd')), null, 'tile-cost'),
      tile('Cache hit rate', req ? fmtPct(sum('cache_hits') / req) : '—', `${fmtInt(sum('cache_hits'))} hits`, 'tile-cache'),
      tile('Saved by cache', fmtUsd(sum('saved_usd')), null, 'tile-saved'),
    );

    charts.requests.draw({
      ...base, kind: 'bar', format: fmtCompact, counts: true,
      series: [
        { name: 'Succeeded', values: col((r) => Math.max(0, (r.requests || 0) - (r.errors || 0))), color: 0 },
        { name: 'Failed', values: col((r) => r.errors || 0), color: 6 },
      ],
    });
    charts.errorRate.draw({
      ...base, kind: 'line', format: fmtPct,
      series: [{ name: 'Error rate', values: col((r) => (r.requests ? (r.errors || 0) / r.requests : null)), color: 6 }],
    });
    charts.latency.draw({
      ...base, kind: 'line', format: fmtMs,
      series: [
        { name: 'p50', values: col((r) => r.p50_latency_ms), color: 0 },
        { name: 'p95', values: col((r) => r.p95_latency_ms), color: 1 },
      ],
    });
    charts.ttft.draw({
      ...base, kind: 'line', format: fmtMs, empty: 'No streamed requests in this range',
      series: [
        { name: 'p50', values: col((r) => r.p50_ttft_ms), color: 0 },
        { name: 'p95', values: col((r) => r.p95_ttft_ms), color: 1 },
      ],
    });
    charts.tokens.draw({
      ...base, kind: 'bar', format: fmtCompact, counts: true,
      series: [
        { name: 'Input', values: col((r) => r.input_tokens || 0), color: 0 },
        { name: 'Output', values: col((r) => r.output_tokens || 0), color: 2 },
      ],
    });
    charts.cost.draw({
      ...base, kind: 'bar', format: fmtUsd,
      series: [{ name: 'Cost', values: col((r) => r.cost_usd || 0), color: 4 }],
    });
    charts.cache.draw({
      ...base, kind: 'line', format: fmtPct,
      series: [{ name: 'Hit rate', values: col((r) => (r.requests ? (r.cache_hits || 0) / r.requests : null)), color: 2 }],
    });

    const tm = data.top_models || [];
    fill(models, tm.length ? tm.map((m) => h('tr', {},
      h('td', {}, h('a', { href: `#/requests?model=${encodeURIComponent(m.name)}` }, m.name)),
      h('td', { class: 'num' }, fmtInt(m.requests)),
      h('td', { class: 'num' }, fmtUsd(m.cost_usd)))) : empty(3, 'No requests in this range'));
    const tp = data.top_providers || [];
    fill(providers, tp.length ? tp.map((p) => h('tr', {},
      h('td', {}, h('a', { href: `#/requests?provider=${encodeURIComponent(p.name)}` }, p.name)),
      h('td', { class: 'num' }, fmtInt(p.requests)),
      h('td', { class: 'num' }, `${fmtInt(p.errors)}${p.requests ? ` (${fmtPct((p.errors || 0) / p.requests)})` : ''}`),
      h('td', { class: 'num' }, fmtUsd(p.cost_usd)))) : empty(4, 'No requests in this range'));
  }

  await refresh();
  return poll(() => (paused ? null : refresh()), 5000);
}

function tile(label, value, sub, testid) {
  return h('div', { class: 'tile', 'data-testid': testid },
    h('div', { class: 'label' }, label),
    h('div', { class: 'value' }, value),
    sub ? h('div', { class: 'sub' }, sub) : null);
}
