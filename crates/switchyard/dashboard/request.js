// One request: what was asked, every attempt on a timeline, tokens, cost,
// cache, tags and (by log mode) the bodies.

import { api } from './api.js';
import { lastList } from './requests.js';
import { fmtInt, fmtMs, fmtTime, fmtUsd, h } from './ui.js';

// What a caller spoke, as records name it.
const DIALECTS = {
  openai: 'OpenAI Chat Completions',
  responses: 'OpenAI Responses',
  anthropic: 'Anthropic Messages',
  gemini: 'Gemini API',
  'openai-embeddings': 'OpenAI embeddings',
  'gemini-embeddings': 'Gemini embeddings',
};

export async function render(root, id) {
  // Back to the filtered list the operator came from, if any.
  const back = h('a', { href: lastList, 'data-testid': 'detail-back' }, '← Requests');
  root.append(h('p', {}, back));
  const r = await api(`/admin/v1/logs/${encodeURIComponent(id)}`);
  const ok = r.status >= 200 && r.status < 300 && r.state !== 'interrupted';
  const served = r.provider && r.model ? `${r.provider}/${r.model}` : '—';

  root.append(
    h('div', { class: 'page-head' },
      h('h1', { 'data-testid': 'detail-title' }, 'Request ', h('span', { class: 'mono' }, r.id)),
      h('div', { class: 'actions' },
        h('span', { class: `badge ${ok ? 'ok' : 'err'}`, 'data-testid': 'detail-status' }, `HTTP ${r.status ?? '—'}`),
        r.state === 'interrupted' ? h('span', { class: 'badge warn' }, 'interrupted') : null,
        r.cache ? h('span', { class: `badge ${r.cache === 'HIT' ? 'ok' : ''}`, 'data-testid': 'detail-cache' }, `cache ${r.cache}`) : null)),
    h('div', { class: 'grid-2' },
      section('Summary', 'detail-summary', facts([
        ['Time', fmtTime(r.time_ms)],
        ['Trace', r.trace_id
          ? h('a', { class: 'mono', 'data-testid': 'detail-trace', href: `#/requests?trace_id=${encodeURIComponent(r.trace_id)}`, title: 'Every request of this trace' }, r.trace_id)
          : '—'],
        ['Key', r.key_id || 'anonymous'],
        ['Route', r.route || '—'],
        ['Requested model', r.requested_model || '—'],
        ['Served by', served],
        ['Status', `${r.status ?? '—'}${r.error_class ? ` · ${r.error_class}` : ''}`],
        ['State', r.state || '—'],
        ['Dialect', DIALECTS[r.dialect] || r.dialect || '—'],
        ['Stream', r.stream ? 'yes' : 'no'],
        ['Latency', fmtMs(r.latency_ms)],
        ['Time to first token', fmtMs(r.ttft_ms)],
        ['Log mode', r.log_mode || '—'],
      ])),
      section('Tokens and cost', 'detail-usage', facts([
        ['Input tokens', fmtInt(r.input_tokens)],
        ['Output tokens', fmtInt(r.output_tokens)],
        ['Cached tokens', fmtInt(r.cached_tokens)],
        ['Reasoning tokens', fmtInt(r.reasoning_tokens)],
        ['Usage', r.usage_source === 'estimated' ? 'estimated by the gateway' : (r.usage_source ? 'reported by the provider' : '—')],
        ['Cost', fmtUsd(r.cost_usd)],
        ['Saved by cache', fmtUsd(r.saved_usd)],
        ['Cache', r.cache || '—'],
      ]),
      h('h3', {}, 'Tags'),
      tags(r.metadata))),
    section('Attempts', 'detail-attempts', timeline(r), excluded(r.excluded)),
    section('Request body', 'detail-request-body', body(r.request_body, r.log_mode)),
    section('Response body', 'detail-response-body', body(r.response_body, r.log_mode)),
  );
}

function section(title, testid, ...children) {
  return h('section', { class: 'card', 'aria-label': title, 'data-testid': testid }, h('h2', {}, title), children);
}

function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

function tags(meta) {
  const entries = Object.entries(meta || {});
  if (!entries.length) return h('p', { class: 'muted' }, 'No tags.');
  return h('div', { class: 'tags', 'data-testid': 'detail-tags' },
    entries.map(([k, v]) => h('span', { class: 'tag' }, `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)));
}

/// Each attempt as a bar on a shared time axis that starts with the request.
function timeline(r) {
  const attempts = [...(r.attempts || [])].sort((a, b) => a.start_ms - b.start_ms);
  if (!attempts.length) {
    return h('p', { class: 'muted', 'data-testid': 'attempt-timeline' },
      r.cache === 'HIT' ? 'Served from the cache; no provider was called.' : 'No attempts were recorded.');
  }
  // Attempts start at offsets (ms) from the request's arrival, which is 0.
  const span = Math.max(1, r.latency_ms || 0, ...attempts.map((a) => a.start_ms + (a.duration_ms || 0)));
  const pct = (v) => `${Math.max(0, Math.min(100, (v / span) * 100)).toFixed(2)}%`;

  const bar = (cls, from, dur) => {
    const b = h('span', { class: `tl-bar ${cls}` });
    b.style.left = pct(from);
    b.style.width = `max(3px, ${pct(dur)})`;
    return b;
  };

  const whole = h('li', { class: 'tl-row' },
    h('div', { class: 'tl-label' }, h('strong', {}, 'Whole request'), ` · ${fmtMs(r.latency_ms)}`,
      r.ttft_ms != null ? ` · first token at ${fmtMs(r.ttft_ms)}` : ''),
    h('div', { class: 'tl-track', 'aria-hidden': 'true' }, bar('whole', 0, r.latency_ms || 0),
      r.ttft_ms != null ? (() => { const m = h('span', { class: 'tl-mark' }); m.style.left = pct(r.ttft_ms); return m; })() : null));

  return h('div', {},
    h('ol', { class: 'timeline', 'data-testid': 'attempt-timeline', 'aria-label': 'Attempt timeline' },
      whole,
      attempts.map((a, i) => h('li', { class: 'tl-row', 'data-testid': 'attempt', 'data-outcome': a.outcome },
        h('div', { class: 'tl-label' },
          h('strong', {}, `${i + 1}. ${a.target}`), ' ',
          a.jurisdiction ? h('span', { class: 'badge' }, a.jurisdiction) : null, ' ',
          h('span', { class: `badge ${a.outcome === 'ok' ? 'ok' : 'err'}` }, a.outcome),
          a.status != null ? ` HTTP ${a.status}` : '',
          a.error_class ? ` · ${a.error_class}` : '',
          ` · ${fmtMs(a.duration_ms)} · started at +${fmtMs(a.start_ms)}`),
        h('div', { class: 'tl-track', 'aria-hidden': 'true' }, bar(a.outcome === 'ok' ? 'ok' : 'err', a.start_ms, a.duration_ms || 0))))),
    h('div', { class: 'tl-axis', 'aria-hidden': 'true' }, h('span', {}, '0 ms'), h('span', {}, fmtMs(span))));
}

function excluded(list) {
  if (!list || !list.length) return null;
  return h('div', { 'data-testid': 'detail-excluded' },
    h('h3', {}, 'Targets not tried'),
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Target', 'Jurisdiction', 'Reason'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, list.map((x) => h('tr', {}, h('td', {}, x.target), h('td', {}, x.jurisdiction || '—'), h('td', {}, x.reason)))))));
}

function body(text, mode) {
  if (text === null || text === undefined) {
    return h('p', { class: 'muted', 'data-testid': 'body-missing' },
      mode && mode !== 'full' ? `Not kept (log mode ${mode}).` : 'Not recorded.');
  }
  let shown = text;
  try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON: show as sent */ }
  return h('pre', { class: 'body', tabindex: '0' }, shown);
}
