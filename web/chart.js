// dynserve dashboard: small SVG time-series charts (no library, no build step).
//
// drawChart(figure, spec) redraws one chart inside a <figure> it owns. spec:
//   { title, unit, fmt(v) -> text, t0, t1 (ms since epoch: the x range), yMax (optional cap),
//     series: [{ label, style: 0..3 (colour + marker), dash: bool, points: [[t, v|null], ...] }],
//     hlines: [{ y, label }]   horizontal reference lines (split weight, guard threshold),
//     marks:  [{ t, letter, text }] vertical event lines on the time axis }
// A null value breaks the line. Every series has its own colour AND dash pattern AND marker
// shape, so colour is never the only way to tell them apart; the legend names each one and the
// <svg> is role="img" with a text summary of the latest values. The figure keeps the spec it drew
// (figure.chartSpec) so tests and tools can read the data behind the picture.
'use strict';

const SVG_NS = 'http://www.w3.org/2000/svg';
const PAD = { l: 46, r: 12, t: 16, b: 24 };
const DASHES = ['', '6 3', '2 3', '10 3 2 3'];
const MARKERS = ['circle', 'square', 'triangle', 'diamond'];

function svgEl(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// A "nice" upper bound for the y axis with four gridline steps of 1, 2 or 5 times a power of ten.
function niceMax(max) {
  if (!(max > 0)) return 1;
  const raw = max / 4;
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return 4 * m * p;
  return 40 * p;
}

// Marks closer than 4% of the span share one line: "D S" for a deploy and a split together.
function groupMarks(marks, t0, span) {
  const out = [];
  for (const m of [...marks].filter((x) => x.t >= t0 && x.t <= t0 + span).sort((a, b) => a.t - b.t)) {
    const g = out[out.length - 1];
    if (g && m.t - g.t < span * 0.04) {
      g.letter += m.letter;
      g.text += `\n${m.text}`;
      if (m.kind === 'guard_rollback' || m.kind === 'rollback') g.kind = m.kind;
    } else out.push({ ...m });
  }
  return out;
}

function marker(shape, x, y, cls) {
  const r = 3.5;
  if (shape === 'circle') return svgEl('circle', { cx: x, cy: y, r, class: cls });
  if (shape === 'square') return svgEl('rect', { x: x - r, y: y - r, width: 2 * r, height: 2 * r, class: cls });
  const pts = shape === 'triangle'
    ? [[x, y - r - 1], [x + r + 1, y + r], [x - r - 1, y + r]]
    : [[x, y - r - 1], [x + r + 1, y], [x, y + r + 1], [x - r - 1, y]];
  return svgEl('polygon', { points: pts.map((p) => p.join(',')).join(' '), class: cls });
}

const hhmm = (t) => {
  const d = new Date(t);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
};

// Drawn at the figure's own pixel width (the viewBox is 1:1), so text never shrinks with the chart.
function drawChart(figure, spec) {
  figure.chartSpec = spec;
  const CHART_W = Math.max(240, Math.round(figure.clientWidth || 480));
  const CHART_H = 180;
  const fmt = spec.fmt || ((v) => String(v));
  const x0 = PAD.l, x1 = CHART_W - PAD.r, y0 = CHART_H - PAD.b, y1 = PAD.t;
  const span = Math.max(1, spec.t1 - spec.t0);
  const X = (t) => x0 + ((t - spec.t0) / span) * (x1 - x0);
  let max = 0;
  for (const s of spec.series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
  for (const h of spec.hlines || []) if (h.y > max) max = h.y;
  const top = spec.yMax ? Math.min(spec.yMax, niceMax(max)) : niceMax(max);
  const Y = (v) => y0 - (v / top) * (y0 - y1);

  const latest = spec.series.map((s) => {
    const last = [...s.points].reverse().find((p) => p[1] !== null);
    return `${s.label}: ${last ? fmt(last[1]) : 'no data'}`;
  }).join('; ');
  const svg = svgEl('svg', {
    viewBox: `0 0 ${CHART_W} ${CHART_H}`, width: CHART_W, height: CHART_H, role: 'img', class: 'chart',
    'aria-label': `${spec.title}. Latest: ${latest}.`,
  });

  // grid and y labels
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(svgEl('line', { x1: x0, x2: x1, y1: Y(v), y2: Y(v), class: i ? 'grid' : 'axis' }));
    svg.append(svgEl('text', { x: x0 - 4, y: Y(v) + 4, class: 'ylabel' }, fmt(v)));
  }
  // x labels: about five, on whole minutes when the span allows
  const step = span >= 240000 ? Math.ceil(span / 5 / 60000) * 60000 : Math.ceil(span / 5 / 10000) * 10000;
  for (let t = Math.ceil(spec.t0 / step) * step; t <= spec.t1; t += step) {
    svg.append(svgEl('line', { x1: X(t), x2: X(t), y1: y0, y2: y0 + 4, class: 'axis' }));
    svg.append(svgEl('text', { x: X(t), y: CHART_H - 6, class: 'xlabel' }, hhmm(t)));
  }
  // event marks
  for (const m of groupMarks(spec.marks || [], spec.t0, span)) {
    const g = svgEl('g', { class: `mark mark-${m.kind || 'event'}` });
    g.append(svgEl('title', {}, m.text));
    g.append(svgEl('line', { x1: X(m.t), x2: X(m.t), y1: y1 - 4, y2: y0 }));
    g.append(svgEl('text', { x: X(m.t) + 2, y: y1 + 6 }, m.letter));
    svg.append(g);
  }
  // reference lines
  for (const h of spec.hlines || []) {
    const g = svgEl('g', { class: 'hline' });
    g.append(svgEl('title', {}, `${h.label}: ${fmt(h.y)}`));
    g.append(svgEl('line', { x1: x0, x2: x1, y1: Y(h.y), y2: Y(h.y) }));
    g.append(svgEl('text', { x: x1 - 2, y: Y(h.y) - 3 }, h.label));
    svg.append(g);
  }
  // series: one path each (gaps at nulls), a marker on the latest point
  spec.series.forEach((s) => {
    let d = '';
    let pen = false;
    let last = null;
    for (const [t, v] of s.points) {
      if (v === null || t < spec.t0) { pen = false; continue; }
      d += `${pen ? 'L' : 'M'}${X(t).toFixed(1)},${Y(v).toFixed(1)}`;
      pen = true;
      last = [t, v];
    }
    const cls = `s${s.style % 4}`;
    const g = svgEl('g', { class: `series ${cls}`, 'data-label': s.label });
    g.append(svgEl('title', {}, s.label));
    g.append(svgEl('path', { d, 'stroke-dasharray': DASHES[(s.dash ? s.style + 1 : s.style) % 4] || null }));
    if (last) g.append(marker(MARKERS[s.style % 4], X(last[0]), Y(last[1]), 'dot'));
    svg.append(g);
  });

  const legend = document.createElement('ul');
  legend.className = 'legend';
  spec.series.forEach((s) => {
    const li = document.createElement('li');
    const key = svgEl('svg', { viewBox: '0 0 28 10', width: 28, height: 10, 'aria-hidden': 'true', class: `s${s.style % 4}` });
    key.append(svgEl('line', { x1: 1, x2: 27, y1: 5, y2: 5, 'stroke-dasharray': DASHES[(s.dash ? s.style + 1 : s.style) % 4] || null }));
    key.append(marker(MARKERS[s.style % 4], 14, 5, 'dot'));
    li.append(key, document.createTextNode(` ${s.label}`));
    legend.append(li);
  });

  let caption = figure.querySelector('figcaption');
  if (!caption) {
    caption = document.createElement('figcaption');
    figure.append(caption);
  }
  caption.textContent = `${spec.title}${spec.unit ? ` (${spec.unit})` : ''}`;
  figure.replaceChildren(caption, svg, legend);
}

window.drawChart = drawChart;
