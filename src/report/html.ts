/**
 * HTML building blocks for self-contained reports: escaping, the page shell with the chart library
 * (Chart.js, UMD build) and the chart data inlined, line charts, and a confusion-matrix heatmap.
 * Nothing in a page loads from the network.
 */
import { readFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { GraftError } from '../errors.ts';

export const esc = (s: unknown): string => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** A chart series: points [x, y]; a y of null leaves a gap. */
export interface Series { name: string; points: [number, number | null][]; dashed?: boolean; pointsOnly?: boolean; color?: string; /** Point radius in pixels (default 6 for pointsOnly, else 3, or 0 on long lines). */ radius?: number }

export interface ChartSpec {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  xLog?: boolean;
  /** Which ticks of a log x axis get a label (default 'pow10'). */
  xLogTicks?: 'pow10' | '125';
  /** y ticks as percentages of 1. */
  percent?: boolean;
  yMin?: number;
  yMax?: number;
  /** Only integer x ticks (epochs, label counts). */
  xInteger?: boolean;
}

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];

let chartJsCache: { code: string; version: string } | null = null;

/** The Chart.js UMD build from node_modules, made safe to inline in a <script> element. */
export function chartLibrary(): { code: string; version: string } {
  if (chartJsCache) return chartJsCache;
  let dist: string;
  try {
    dist = dirname(createRequire(import.meta.url).resolve('chart.js'));
  } catch {
    throw new GraftError('E_FILE_MISSING', 'the chart.js package is not installed', 'Run npm install in the graft folder (chart.js is a dependency).');
  }
  const file = join(dist, 'chart.umd.min.js');
  if (!existsSync(file)) throw new GraftError('E_FILE_MISSING', `${file} is missing`, 'Reinstall chart.js: npm install.');
  const code = readFileSync(file, 'utf8').replace(/<\/script/gi, '<\\/script').replace(/<!--/g, '<\\!--');
  let version = 'unknown';
  try {
    version = JSON.parse(readFileSync(join(dist, '..', 'package.json'), 'utf8')).version;
  } catch { /* keep unknown */ }
  chartJsCache = { code, version };
  return chartJsCache;
}

/** JSON for a <script type="application/json"> element (no "</script>" can end it early). */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');

/** Finite numbers stay, anything else becomes null (a gap). */
export const finite = (x: unknown): number | null => (typeof x === 'number' && Number.isFinite(x) ? x : null);

export function chartBox(spec: ChartSpec): string {
  return `<figure class="chart"><div class="canvas-box"><canvas id="${esc(spec.id)}" data-chart="${esc(spec.id)}" data-rendered="0" role="img" aria-label="${esc(spec.title)}"></canvas></div></figure>`;
}

/** Draws every chart of the page; each canvas gets data-rendered="1" and data-ink (painted pixels). */
const CLIENT = `(function () {
  var specs = JSON.parse(document.getElementById('graft-charts').textContent);
  var palette = ${JSON.stringify(PALETTE)};
  var drawn = 0;
  // Log axes: labels at powers of ten ('pow10') or at 1, 2, 5 times them ('125'); none in between.
  var logTick = function (which) {
    return function (v) {
      var e = Math.floor(Math.log10(v) + 1e-9), m = Math.round(v / Math.pow(10, e) * 1000) / 1000;
      if (!(m === 1 || (which === '125' && (m === 2 || m === 5)))) return '';
      return v >= 0.01 && v < 1e5 ? String(+v.toPrecision(3)) : '1e' + e;
    };
  };
  specs.forEach(function (s) {
    var c = document.getElementById(s.id);
    if (!c) return;
    try {
      if (typeof Chart === 'undefined') throw new Error('the chart library did not load');
      var pct = function (v) { return (Math.round(v * 1000) / 10) + '%'; };
      new Chart(c, {
        type: 'scatter',
        data: { datasets: s.series.map(function (d, i) {
          var col = d.color || palette[i % palette.length];
          return {
            label: d.name, data: d.points.map(function (p) { return { x: p[0], y: p[1] }; }),
            borderColor: col, backgroundColor: col, borderDash: d.dashed ? [6, 4] : [], showLine: !d.pointsOnly, spanGaps: true,
            pointRadius: d.radius != null ? d.radius : d.pointsOnly ? 6 : (d.points.length > 30 ? 0 : 3), pointHoverRadius: 5, borderWidth: 2, tension: 0
          };
        }) },
        options: {
          animation: false, responsive: true, maintainAspectRatio: false,
          plugins: {
            title: { display: true, text: s.title, font: { size: 14 } },
            legend: { position: 'bottom' },
            tooltip: { callbacks: { label: function (ctx) { return ctx.dataset.label + ': ' + (s.percent ? pct(ctx.parsed.y) : ctx.parsed.y.toPrecision(4)) + ' at ' + ctx.parsed.x; } } }
          },
          scales: {
            x: { type: s.xLog ? 'logarithmic' : 'linear', title: { display: true, text: s.xLabel },
                 ticks: s.xLog ? { autoSkip: false, maxRotation: 0, callback: logTick(s.xLogTicks) } : s.xInteger ? { precision: 0 } : {} },
            y: { min: s.yMin, max: s.yMax, title: { display: true, text: s.yLabel },
                 ticks: s.percent ? { callback: function (v) { return pct(v); } } : {} }
          }
        }
      });
      var ink = 0;
      try {
        var px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        for (var i = 3; i < px.length; i += 4) if (px[i] > 0) ink++;
      } catch (e) { ink = -1; }
      c.setAttribute('data-ink', String(ink));
      c.setAttribute('data-rendered', '1');
      drawn++;
    } catch (e) {
      c.setAttribute('data-rendered', 'error');
      var p = document.createElement('p');
      p.className = 'error';
      p.textContent = 'Chart not drawn: ' + (e && e.message ? e.message : e);
      c.parentNode.parentNode.appendChild(p);
    }
  });
  document.documentElement.setAttribute('data-charts-rendered', String(drawn));
})();`;

const CSS = `
:root { --fg: #1d2330; --muted: #5b6475; --line: #dde1e8; --bg: #ffffff; --accent: #1f5fbf; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1140px; margin: 0 auto; padding: 20px 28px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 28px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
.sub { color: var(--muted); margin: 0 0 12px; }
.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 6px 18px; margin: 12px 0; }
.meta div { border-left: 3px solid var(--line); padding-left: 8px; }
.meta b { display: block; font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); font-weight: 600; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.canvas-box { position: relative; height: 300px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child, th.l, td.l { text-align: left; }
thead th { font-size: 12px; color: var(--muted); font-weight: 600; }
tr.total td { font-weight: 600; border-top: 2px solid var(--line); }
.bar { display: inline-block; height: 8px; background: var(--accent); border-radius: 2px; vertical-align: middle; margin-left: 6px; }
.heatmap { overflow-x: auto; }
.heatmap table td { width: 40px; min-width: 28px; text-align: center; border: 1px solid #fff; padding: 4px 2px; font-size: 12px; }
.heatmap table th { font-size: 12px; padding: 2px 4px; white-space: nowrap; }
.heatmap thead th { vertical-align: bottom; text-align: center; }
.heatmap .axis { color: var(--muted); font-size: 12px; }
.legend-scale { display: inline-block; width: 120px; height: 10px; vertical-align: middle; border: 1px solid var(--line); }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; color: #fff; text-transform: uppercase; font-size: 12px; letter-spacing: .05em; }
.v-good-fit { background: #2e7d32; } .v-overfitting { background: #c62828; } .v-underfitting { background: #ef6c00; }
.v-not-converged { background: #f9a825; color: #1d2330; } .v-unstable { background: #6a1b9a; } .v-no-validation, .v-unknown { background: #607d8b; }
.note { background: #f5f7fa; border-left: 3px solid var(--accent); padding: 8px 12px; margin: 8px 0; }
.caveat { background: #fff8e1; border-left: 3px solid #f9a825; padding: 8px 12px; margin: 8px 0; }
.error { color: #c62828; }
.worst { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 12px; }
.worst figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; text-align: center; font-size: 12px; }
.worst img { width: 112px; height: 112px; object-fit: contain; image-rendering: pixelated; background: #f0f0f0; }
.worst figcaption { word-break: break-all; }
.wrong { color: #c62828; font-weight: 600; }
.values { font: 11px/1.4 ui-monospace, "Liberation Mono", monospace; text-align: left; max-width: 640px; word-break: break-word; color: var(--muted); }
.text { text-align: left; max-width: 640px; }
code { font: 12px ui-monospace, "Liberation Mono", monospace; background: #f3f4f7; padding: 1px 4px; border-radius: 3px; }
footer { margin-top: 36px; color: var(--muted); font-size: 12px; }
`;

/** A whole page: the body HTML plus the inlined chart library, chart data and drawing script. */
export function page(title: string, body: string, charts: ChartSpec[]): string {
  const lib = charts.length ? chartLibrary() : null;
  const scripts = lib
    ? `<script type="application/json" id="graft-charts">${scriptJson(charts)}</script>\n<script>/* Chart.js ${esc(lib.version)} (MIT licence), inlined */\n${lib.code}\n</script>\n<script>${CLIENT}</script>`
    : '';
  return `<!DOCTYPE html>
<html lang="en" data-charts="${charts.length}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<title>${esc(title)}</title>
<style>${CSS}</style>
</head>
<body>
<main>
${body}
</main>
${scripts}
</body>
</html>
`;
}

/** Blue for the diagonal, red off it; the intensity is the share of the true class's row. */
function cellStyle(count: number, rowTotal: number, diagonal: boolean): string {
  if (!count) return 'background:#f7f8fa;color:#b0b6c2';
  const f = rowTotal ? count / rowTotal : 0;
  const a = 0.12 + 0.88 * f;
  const [r, g, b] = diagonal ? [31, 95, 191] : [198, 40, 40];
  return `background:rgba(${r},${g},${b},${a.toFixed(3)});color:${a > 0.55 ? '#fff' : '#1d2330'}`;
}

/** The confusion matrix as an HTML heatmap (rows: true class, columns: predicted). */
export function heatmap(labels: string[], confusion: number[][]): string {
  const head = labels.map((l) => `<th title="predicted ${esc(l)}">${esc(l)}</th>`).join('');
  const rows = confusion.map((row, t) => {
    const total = row.reduce((a, b) => a + b, 0);
    const cells = row.map((c, p) => `<td style="${cellStyle(c, total, t === p)}" title="true ${esc(labels[t])}, predicted ${esc(labels[p])}: ${c} of ${total}">${c}</td>`).join('');
    return `<tr><th title="true ${esc(labels[t])}">${esc(labels[t])}</th>${cells}</tr>`;
  }).join('\n');
  return `<div class="heatmap" data-heatmap="confusion">
<table><thead><tr><th class="axis">true \\ predicted</th>${head}</tr></thead>
<tbody>
${rows}
</tbody></table>
<p class="sub">Rows are the true classes, columns the predictions; the colour is the share of the row
(<span class="legend-scale" style="background:linear-gradient(90deg,rgba(31,95,191,.12),rgb(31,95,191))"></span> correct,
<span class="legend-scale" style="background:linear-gradient(90deg,rgba(198,40,40,.12),rgb(198,40,40))"></span> confused).</p>
</div>`;
}
