// Providers: configuration, health and circuit state of each provider and
// of each of its targets, refreshed every 5 s while the tab is visible.

import { api } from './api.js';
import { clear, errorBox, fmtInt, fmtMs, fmtPct, fmtRel, fmtTime, h, poll } from './ui.js';

export async function render(root) {
  const list = h('div', { 'data-testid': 'providers-list' });
  const errors = h('div');
  const updated = h('span', { class: 'live' }, h('span', { class: 'dot' }), h('span', {}, ''));
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Providers'), updated), errors, list);

  async function refresh() {
    let data;
    try {
      data = await api('/admin/v1/providers');
    } catch (e) {
      clear(errors).append(errorBox(e));
      return;
    }
    clear(errors);
    const providers = data.providers || [];
    clear(list).append(...(providers.length ? providers.map(card)
      : [h('p', { class: 'notice' }, 'No providers are configured.')]));
    updated.lastChild.textContent = `Live · updated ${fmtTime(Date.now()).slice(11)}`;
  }

  await refresh();
  return poll(refresh, 5000);
}

function circuit(hl) {
  if (!hl) return h('span', { class: 'badge' }, 'no traffic yet');
  const c = hl.circuit;
  const cls = c === 'closed' ? 'ok' : c === 'open' ? 'err' : 'warn';
  const text = c === 'closed' ? 'circuit closed · healthy'
    : c === 'open' ? `circuit open${hl.reopens_in_s != null ? ` · probes in ${hl.reopens_in_s} s` : ''}`
      : 'circuit half-open · probing';
  return h('span', { class: `badge ${cls}`, 'data-testid': 'circuit', 'data-circuit': c }, text);
}

function lastError(hl) {
  if (!hl || !hl.last_error_class) return '—';
  return `${hl.last_error_class}${hl.last_error_at ? ` (${fmtRel(hl.last_error_at * 1000)})` : ''}`;
}

function card(p) {
  const hl = p.health;
  const targets = p.targets || [];
  return h('section', { class: 'card', 'aria-label': `Provider ${p.name}`, 'data-testid': `provider-${p.name}` },
    h('div', { class: 'page-head' },
      h('h2', {}, p.name, p.kind && p.kind !== p.name ? [' ', h('span', { class: 'muted' }, p.kind)] : null),
      h('div', { class: 'actions' },
        p.jurisdiction ? h('span', { class: 'badge' }, p.jurisdiction) : null,
        h('span', { class: `badge ${p.key_set ? 'ok' : 'warn'}` }, p.key_set ? 'key set' : 'no key'),
        circuit(hl))),
    h('dl', { class: 'facts' },
      h('dt', {}, 'Base URL'), h('dd', { class: 'mono' }, p.base_url || '—'),
      hl ? [
        h('dt', {}, 'Requests'), h('dd', {}, `${fmtInt(hl.requests)} (${fmtInt(hl.failures)} failed)`),
        h('dt', {}, 'Error rate'), h('dd', { 'data-testid': 'error-rate' }, fmtPct(hl.error_rate)),
        h('dt', {}, 'Latency'), h('dd', {}, fmtMs(hl.latency_ms)),
        h('dt', {}, 'Consecutive failures'), h('dd', {}, fmtInt(hl.consecutive_failures)),
        h('dt', {}, 'Ejections'), h('dd', {}, fmtInt(hl.ejections)),
        h('dt', {}, 'Last error'), h('dd', {}, lastError(hl)),
        hl.blocked_for_s ? [h('dt', {}, 'Blocked'), h('dd', {}, `for ${hl.blocked_for_s} s (Retry-After)`)] : null,
      ] : null),
    targets.length ? [
      h('h3', {}, 'Targets'),
      h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `Targets of ${p.name}` },
        h('table', {},
          h('thead', {}, h('tr', {}, ['Target', 'Circuit', 'Error rate', 'Latency', 'Requests', 'Failures', 'Last error', 'Blocked'].map((t, i) =>
            h('th', { scope: 'col', class: i >= 2 && i <= 5 ? 'num' : null }, t)))),
          h('tbody', {}, targets.map((t) => h('tr', { 'data-testid': 'target-row' },
            h('td', { class: 'mono' }, t.key),
            h('td', {}, circuit(t)),
            h('td', { class: 'num' }, fmtPct(t.error_rate)),
            h('td', { class: 'num' }, fmtMs(t.latency_ms)),
            h('td', { class: 'num' }, fmtInt(t.requests)),
            h('td', { class: 'num' }, fmtInt(t.failures)),
            h('td', {}, lastError(t)),
            h('td', {}, t.blocked_for_s ? `${t.blocked_for_s} s` : '—'))))))] : null);
}
