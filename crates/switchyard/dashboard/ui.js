// Small DOM helpers and formatters shared by the pages. Text always goes in
// through text nodes, never innerHTML: log records hold whatever clients sent.

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(node, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k === 'text') node.textContent = v;
    else if (k === 'value' && 'value' in node && !(node instanceof SVGElement)) node.value = v;
    else if (k === 'checked' || k === 'selected') node[k] = Boolean(v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

/// h('button', {class: 'primary', onclick: fn}, 'Save')
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

/// Replaces a node's children (arrays are flattened, null is skipped).
export function fill(node, ...children) {
  return append(clear(node), children);
}

export function announce(msg) {
  const r = document.getElementById('announce');
  if (!r) return;
  r.textContent = '';
  setTimeout(() => { r.textContent = msg; }, 30);
}

let uid = 0;
export function nextId(prefix) { uid += 1; return `${prefix}-${uid}`; }

/// A labelled form field. `control` is an input or select; an error
/// paragraph sits under it (id "<control id>-error").
export function field(label, control, { hint, testid } = {}) {
  if (!control.id) control.id = nextId('f');
  const err = h('p', { class: 'error-text', id: control.id + '-error', 'data-testid': testid ? `field-error-${testid}` : null });
  const hintEl = hint ? h('span', { class: 'hint', id: control.id + '-hint' }, hint) : null;
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, err.id].filter(Boolean).join(' '));
  return h('div', { class: 'field' },
    h('label', { for: control.id }, label), control, hintEl, err);
}

export function setFieldError(control, message) {
  const err = document.getElementById(control.id + '-error');
  if (err) err.textContent = message || '';
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

/// A radio group drawn as a segmented control.
export function segmented(legend, name, options, value, onchange, testidPrefix) {
  const set = h('fieldset', {},
    h('legend', { class: 'sr-only' }, legend),
    h('div', { class: 'segmented' }, options.map(([v, label]) =>
      h('label', {},
        h('input', {
          type: 'radio', name, value: v, checked: v === value,
          'data-testid': testidPrefix ? `${testidPrefix}-${v}` : null,
          onchange: (ev) => ev.target.checked && onchange(v),
        }),
        h('span', {}, label)))));
  return set;
}

export function errorBox(e) {
  return h('div', { class: 'notice err', role: 'alert', 'data-testid': 'error' }, e && e.message ? e.message : String(e));
}

/// Names each cell after its column, so narrow windows can show a table
/// row as a card (see table.cards in app.css).
export function labelled(tr, labels) {
  [...tr.children].forEach((td, i) => { if (labels[i]) td.dataset.label = labels[i]; });
  return tr;
}

export function empty(cols, text) {
  return h('tr', {}, h('td', { class: 'empty', colspan: cols }, text));
}

/// A modal dialog asking to confirm a destructive action. Resolves to true
/// only when the confirm button is pressed; Escape and Cancel resolve false.
export function confirmDialog({ title, body, confirm = 'Confirm', danger = true }) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = nextId('dlg');
    let result = false;
    const dlg = h('dialog', { 'aria-labelledby': titleId, 'data-testid': 'confirm-dialog' },
      h('h2', { id: titleId }, title),
      h('div', {}, body),
      h('form', { method: 'dialog', class: 'actions' },
        h('button', { value: 'cancel', autofocus: true, 'data-testid': 'confirm-cancel' }, 'Cancel'),
        h('button', {
          value: 'ok', class: danger ? 'danger' : 'primary', 'data-testid': 'confirm-ok',
          onclick: () => { result = true; },
        }, confirm)));
    dlg.addEventListener('close', () => {
      dlg.remove();
      if (opener && opener.isConnected) opener.focus();
      resolve(result);
    });
    document.body.append(dlg);
    dlg.showModal();
  });
}

// Formatters

export function fmtInt(n) {
  return n === null || n === undefined ? '—' : Math.round(n).toLocaleString('en-US');
}

export function fmtCompact(n) {
  if (n === null || n === undefined) return '—';
  const a = Math.abs(n);
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + 'B';
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + 'M';
  if (a >= 1e4) return (n / 1e3).toFixed(a >= 1e5 ? 0 : 1) + 'k';
  return fmtInt(n);
}

export function fmtUsd(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  if (n === 0) return '$0.00';
  const a = Math.abs(n);
  if (a >= 100) return '$' + n.toLocaleString('en-US', { maximumFractionDigits: 0 });
  if (a >= 0.01) return '$' + n.toFixed(2);
  return '$' + n.toPrecision(2).replace(/0+$/, '');
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '—';
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  return (ms / 60000).toFixed(1) + ' min';
}

export function fmtPct(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  const p = x * 100;
  return (p === 0 || p >= 10 ? p.toFixed(0) : p.toFixed(1)) + '%';
}

export function fmtBytes(n) {
  if (n === null || n === undefined) return '—';
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}

export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtRel(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return '—';
  const d = Math.round((ms - now) / 1000);
  const a = Math.abs(d);
  let t;
  if (a < 60) t = `${a} s`;
  else if (a < 3600) t = `${Math.round(a / 60)} min`;
  else if (a < 86400) t = `${Math.round(a / 3600)} h`;
  else t = `${Math.round(a / 86400)} d`;
  return d >= 0 ? `in ${t}` : `${t} ago`;
}

/// Hash-route query helpers: "#/requests?provider=openai".
export function hashQuery() {
  const i = location.hash.indexOf('?');
  return new URLSearchParams(i < 0 ? '' : location.hash.slice(i + 1));
}

export function replaceHashQuery(path, params) {
  const q = params.toString();
  history.replaceState(null, '', `#/${path}${q ? '?' + q : ''}`);
}

export const RANGES = {
  '15m': { label: '15 min', ms: 15 * 60e3, bucket: 'minute' },
  '1h': { label: '1 h', ms: 3600e3, bucket: 'minute' },
  '24h': { label: '24 h', ms: 24 * 3600e3, bucket: 'hour' },
  '7d': { label: '7 d', ms: 7 * 24 * 3600e3, bucket: 'day' },
  '30d': { label: '30 d', ms: 30 * 24 * 3600e3, bucket: 'day' },
};

export const BUCKET_MS = { minute: 60e3, hour: 3600e3, day: 86400e3 };

/// Runs `fn` every `ms` while the page is visible, and at once when it
/// becomes visible again. Returns a stop function.
export function poll(fn, ms) {
  let busy = false;
  const tick = async () => {
    if (document.hidden || busy) return;
    busy = true;
    try { await fn(); } finally { busy = false; }
  };
  const timer = setInterval(tick, ms);
  const onVis = () => { if (!document.hidden) tick(); };
  document.addEventListener('visibilitychange', onVis);
  return () => { clearInterval(timer); document.removeEventListener('visibilitychange', onVis); };
}
