// Time-series charts drawn as inline SVG: stacked bars and lines over a
// continuous time axis, so sparse buckets land where they belong. Colours
// come from CSS classes (fill-N / stroke-N), so both themes apply without a
// redraw. Each chart carries a text summary and a data table for readers
// who cannot see it.

import { h, s, clear, fmtTime } from './ui.js';

const HEIGHT = 190;
const M = { top: 10, right: 10, bottom: 24, left: 52 };

/// A card with a title, an SVG chart that redraws on resize, a legend and a
/// collapsible data table. Call `.draw(spec)` whenever the data changes.
///
/// spec = { kind: 'bar' | 'line', times: [ms], bucketMs, since, until,
///          series: [{ name, values: [number | null], color?: 0..8 }],
///          format: (n) => string, empty?: string }
export function chartCard(title, testid) {
  const body = h('div', { class: 'chart-body' });
  const legend = h('ul', { class: 'legend', 'aria-hidden': 'true' });
  const details = h('details', { class: 'data' }, h('summary', {}, 'Data'), h('div', { class: 'table-wrap' }));
  const card = h('section', { class: 'card', 'data-testid': testid, 'aria-label': title },
    h('h2', {}, title), body, legend, details);
  let spec = null;
  let lastWidth = 0;
  const render = () => {
    if (!spec) return;
    lastWidth = body.clientWidth || 600;
    clear(body).append(drawChart(spec, lastWidth, title));
  };
  new ResizeObserver(() => {
    if (Math.abs((body.clientWidth || 0) - lastWidth) > 2) render();
  }).observe(body);
  return {
    card,
    draw(next) {
      spec = next;
      render();
      clear(legend).append(...(spec.series.length > 1 ? spec.series.map((se, i) =>
        h('li', {}, h('span', { class: `sw fill-${se.color ?? i}` }), se.name)) : []));
      const wrap = details.querySelector('.table-wrap');
      clear(wrap).append(dataTable(spec));
    },
  };
}

function dataTable(spec) {
  return h('table', {},
    h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Time'),
      spec.series.map((se) => h('th', { scope: 'col', class: 'num' }, se.name)))),
    h('tbody', {}, spec.times.map((t, i) => h('tr', {},
      h('td', { class: 'nowrap' }, fmtTime(t)),
      spec.series.map((se) => h('td', { class: 'num' }, se.values[i] == null ? '—' : spec.format(se.values[i])))))));
}

/// 1, 2, 5 × 10^k steps giving about `count` ticks up to at least `max`;
/// whole steps only when the values are counts.
export function niceTicks(max, count = 4, counts = false) {
  if (!(max > 0)) return [0, 1];
  const raw = counts ? Math.max(1, max / count) : max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const steps = counts && mag < 10 ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10];
  const step = steps.map((m) => m * mag).find((st) => st >= raw);
  const ticks = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const TIME_STEPS = [60e3, 5 * 60e3, 10 * 60e3, 15 * 60e3, 30 * 60e3, 3600e3, 3 * 3600e3,
  6 * 3600e3, 12 * 3600e3, 86400e3, 2 * 86400e3, 7 * 86400e3];

function timeTicks(t0, t1, width) {
  const maxTicks = Math.max(2, Math.floor(width / 90));
  const step = TIME_STEPS.find((st) => (t1 - t0) / st <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
  // Align to local time so "12:00" and midnight fall on round values.
  const off = new Date(t0).getTimezoneOffset() * 60e3;
  const ticks = [];
  for (let t = Math.ceil((t0 - off) / step) * step + off; t <= t1; t += step) ticks.push({ t, step });
  return ticks;
}

function timeLabel(t, step) {
  const d = new Date(t);
  const p = (x) => String(x).padStart(2, '0');
  if (step >= 86400e3) return d.toLocaleDateString('en-US', { month: 'short', day: 'numeric' });
  return `${p(d.getHours())}:${p(d.getMinutes())}`;
}

export function drawChart(spec, width, title) {
  const w = Math.max(240, width);
  const pw = w - M.left - M.right;
  const ph = HEIGHT - M.top - M.bottom;
  const bucket = spec.bucketMs;
  const t0 = Math.floor(spec.since / bucket) * bucket;
  const t1 = Math.max(t0 + bucket, Math.ceil(spec.until / bucket) * bucket);
  const x = (t) => M.left + ((t - t0) / (t1 - t0)) * pw;

  const n = spec.times.length;
  let max = 0;
  const anyValue = spec.series.some((se) => se.values.some((v) => v != null));
  for (let i = 0; i < n; i++) {
    if (spec.kind === 'bar') {
      max = Math.max(max, spec.series.reduce((a, se) => a + (se.values[i] || 0), 0));
    } else {
      for (const se of spec.series) if (se.values[i] != null) max = Math.max(max, se.values[i]);
    }
  }
  const ticks = niceTicks(max, 4, spec.counts === true);
  const top = ticks[ticks.length - 1];
  const y = (v) => M.top + ph - (v / top) * ph;

  const svg = s('svg', {
    class: 'chart', width: w, height: HEIGHT, viewBox: `0 0 ${w} ${HEIGHT}`, role: 'img',
    'aria-label': summary(spec, title),
  });

  for (const v of ticks) {
    svg.append(
      s('line', { class: 'grid', x1: M.left, x2: w - M.right, y1: y(v), y2: y(v) }),
      s('text', { x: M.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, spec.format(v)));
  }
  for (const { t, step } of timeTicks(t0, t1, pw)) {
    svg.append(s('text', { x: x(t), y: HEIGHT - 6, 'text-anchor': 'middle' }, timeLabel(t, step)));
  }
  svg.append(s('line', { class: 'axis', x1: M.left, x2: w - M.right, y1: M.top + ph, y2: M.top + ph }));

  if (n === 0 || !anyValue || (max === 0 && spec.kind === 'bar')) {
    svg.append(s('text', { class: 'empty-text', x: M.left + pw / 2, y: M.top + ph / 2, 'text-anchor': 'middle' },
      spec.empty || 'No data in this range'));
    return svg;
  }

  if (spec.kind === 'bar') {
    const bw = Math.max(1, (bucket / (t1 - t0)) * pw);
    const gap = bw > 6 ? Math.min(4, bw * 0.2) : 0;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      spec.series.forEach((se, k) => {
        const v = se.values[i] || 0;
        if (v <= 0) return;
        const yTop = y(acc + v);
        const hgt = Math.max(0.5, y(acc) - yTop);
        acc += v;
        svg.append(s('rect', {
          class: `fill-${se.color ?? k}`, x: x(spec.times[i]) + gap / 2, y: yTop,
          width: Math.max(1, bw - gap), height: hgt,
        }, s('title', {}, `${fmtTime(spec.times[i])} · ${se.name}: ${spec.format(v)}`)));
      });
    }
  } else {
    const half = bucket / 2;
    spec.series.forEach((se, k) => {
      const color = se.color ?? k;
      let d = '';
      let pen = false;
      for (let i = 0; i < n; i++) {
        const v = se.values[i];
        if (v == null) { pen = false; continue; }
        d += `${pen ? 'L' : 'M'}${x(spec.times[i] + half).toFixed(1)},${y(v).toFixed(1)}`;
        pen = true;
      }
      svg.append(s('path', { class: `line stroke-${color}`, d }));
      for (let i = 0; i < n; i++) {
        const v = se.values[i];
        if (v == null) continue;
        svg.append(s('circle', { class: `fill-${color}`, cx: x(spec.times[i] + half), cy: y(v), r: n > 40 ? 1.8 : 2.8 },
          s('title', {}, `${fmtTime(spec.times[i])} · ${se.name}: ${spec.format(v)}`)));
      }
    });
  }
  return svg;
}

function summary(spec, title) {
  const parts = spec.series.map((se) => {
    const vals = se.values.filter((v) => v != null);
    if (!vals.length) return `${se.name}: no data`;
    if (spec.kind === 'bar') return `${se.name}: total ${spec.format(vals.reduce((a, b) => a + b, 0))}`;
    return `${se.name}: max ${spec.format(Math.max(...vals))}`;
  });
  return `${title}. ${spec.times.length} time buckets. ${parts.join('; ')}.`;
}
