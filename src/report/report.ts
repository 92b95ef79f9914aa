/**
 * `graft report`: one self-contained HTML file for a trained model folder: learning curves, the LR
 * finder's plot (when graft.json has one), the confusion matrix as a heatmap, per-class precision,
 * recall and F1, the most confidently wrong examples (image thumbnails inlined as data: URIs) and the
 * over/underfitting diagnosis. Also comparison reports (a results table, label-budget curves and
 * per-method learning curves) for the demo. Charts are drawn by Chart.js, inlined from node_modules;
 * nothing loads from the network.
 */
import { basename, join, resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.ts';
import { GRAFT_VERSION, type ModelCard, readCard } from '../model/folder.ts';
import type { EpochRecord } from '../train/callbacks.ts';
import type { Diagnosis } from '../train/diagnose.ts';
import { type ChartSpec, type Series, PALETTE, chartBox, esc, finite, heatmap, page } from './html.ts';
import { type EvalResult, type EvaluateOptions, evaluateForReport } from './evaluate.ts';

export { evaluateForReport, recordedData, summarise, type EvalResult, type WorstExample, type EvaluateOptions } from './evaluate.ts';

export interface LrFind { lrs: number[]; losses: number[]; suggestion?: number | null }

export interface ReportOptions {
  /** The page title (default: "graft report: <folder name>"). */
  title?: string;
  /** The model folder, shown in the header. */
  modelDir?: string;
  /** Why there is no evaluation, when evalResult is null. */
  noEvalReason?: string;
  /** The time stamp in the footer (default: now). */
  generatedAt?: Date;
}

const pct = (x: number, d = 1) => `${(100 * x).toFixed(d)}%`;
const num = (x: unknown, d = 4): string => (typeof x === 'number' && Number.isFinite(x) ? (Number.isInteger(x) ? String(x) : x.toPrecision(d)) : '–');

/** The card's history as epoch records (malformed entries dropped). */
export function historyOf(card: ModelCard): EpochRecord[] {
  return (Array.isArray(card.history) ? card.history : []).filter((r): r is EpochRecord =>
    !!r && typeof r === 'object' && typeof (r as EpochRecord).epoch === 'number' && typeof (r as EpochRecord).trainLoss === 'number');
}

/** graft.json's lrFind record ({lrs, losses, suggestion}), when present and well formed. */
export function lrFindOf(card: ModelCard): LrFind | null {
  const f = (card as unknown as { lrFind?: unknown }).lrFind;
  if (!f || typeof f !== 'object') return null;
  const { lrs, losses, suggestion } = f as Record<string, unknown>;
  if (!Array.isArray(lrs) || !Array.isArray(losses) || lrs.length !== losses.length || lrs.length < 2) return null;
  if (!lrs.every((x) => typeof x === 'number' && x > 0)) return null;
  return { lrs: lrs as number[], losses: losses.map((x) => (typeof x === 'number' ? x : NaN)), suggestion: typeof suggestion === 'number' && suggestion > 0 ? suggestion : null };
}

/** What `graft adapt` recorded about the shift, where it did. */
function shiftOf(card: ModelCard): { words: string; method: string; projection: { source: [number, number][]; target: [number, number][]; explained: [number, number] } } | null {
  const a = (card.training as { adapt?: { method?: unknown; shift?: { words?: unknown; projection?: { source?: unknown; target?: unknown; explained?: unknown } } } }).adapt;
  const p = a?.shift?.projection;
  if (!a || typeof a.shift?.words !== 'string' || !p || !Array.isArray(p.source) || !Array.isArray(p.target) || !Array.isArray(p.explained)) return null;
  const pts = (v: unknown[]) => v.filter((q): q is [number, number] => Array.isArray(q) && q.length === 2 && q.every((x) => typeof x === 'number' && Number.isFinite(x)));
  return { words: a.shift.words, method: String(a.method), projection: { source: pts(p.source), target: pts(p.target), explained: [Number(p.explained[0]) || 0, Number(p.explained[1]) || 0] } };
}

function diagnosisOf(card: ModelCard): Diagnosis | null {
  const d = card.diagnosis as Partial<Diagnosis> | undefined;
  if (!d || typeof d !== 'object' || typeof d.summary !== 'string') return null;
  return { verdict: d.verdict ?? ('unknown' as Diagnosis['verdict']), summary: d.summary, evidence: Array.isArray(d.evidence) ? d.evidence : [], advice: Array.isArray(d.advice) ? d.advice : [] };
}

function learningCharts(h: EpochRecord[]): ChartSpec[] {
  const x = (r: EpochRecord) => r.epoch + 1;
  const charts: ChartSpec[] = [{
    id: 'chart-loss', title: 'Loss per epoch', xLabel: 'epoch', yLabel: 'cross-entropy loss', xInteger: true, yMin: 0,
    series: [
      { name: 'train loss', points: h.map((r) => [x(r), finite(r.trainLoss)]) },
      ...(h.some((r) => finite(r.valLoss) !== null) ? [{ name: 'validation loss', points: h.map((r): [number, number | null] => [x(r), finite(r.valLoss)]) }] : []),
    ],
  }];
  const acc: Series[] = [];
  if (h.some((r) => finite(r.trainAccuracy) !== null)) acc.push({ name: 'train accuracy', points: h.map((r) => [x(r), finite(r.trainAccuracy)]) });
  if (h.some((r) => finite(r.valAccuracy) !== null)) acc.push({ name: 'validation accuracy', points: h.map((r) => [x(r), finite(r.valAccuracy)]), color: '#2ca02c' });
  if (acc.length) charts.push({ id: 'chart-accuracy', title: 'Accuracy per epoch', xLabel: 'epoch', yLabel: 'accuracy', xInteger: true, percent: true, yMin: 0, yMax: 1, series: acc });
  return charts;
}

function lrFindChart(f: LrFind): ChartSpec {
  const pts = f.lrs.map((lr, i): [number, number | null] => [lr, finite(f.losses[i])]);
  // Past its minimum the loss explodes; scale the axis to the informative part before it.
  const vals = pts.map((p) => p[1]);
  let best = -1;
  vals.forEach((v, i) => { if (v !== null && (best < 0 || v < vals[best]!)) best = i; });
  const upto = vals.slice(0, best + 1).filter((v): v is number => v !== null);
  const yMax = upto.length ? Math.max(...upto) * 1.25 : undefined;
  const series: Series[] = [{ name: 'loss', points: pts }];
  if (f.suggestion) {
    let j = 0;
    for (let i = 1; i < f.lrs.length; i++) if (Math.abs(Math.log(f.lrs[i]!) - Math.log(f.suggestion)) < Math.abs(Math.log(f.lrs[j]!) - Math.log(f.suggestion))) j = i;
    series.push({ name: `suggested lr ${f.suggestion.toPrecision(2)}`, points: [[f.suggestion, vals[j] ?? null]], pointsOnly: true, color: '#d62728' });
  }
  return { id: 'chart-lrfind', title: 'Learning-rate finder', xLabel: 'learning rate (log scale)', yLabel: 'loss', xLog: true, series, ...(yMax !== undefined ? { yMax } : {}) };
}

function metaItem(name: string, value: string): string {
  return `<div><b>${esc(name)}</b>${value}</div>`;
}

function header(card: ModelCard, o: ReportOptions): string {
  const m = card.metrics ?? {};
  const t = card.training ?? {};
  const labels = card.labels.length <= 24 ? card.labels.map(esc).join(', ') : `${card.labels.slice(0, 24).map(esc).join(', ')}, … (${card.labels.length - 24} more)`;
  const headKind = (card.head as { kind?: unknown; type?: unknown })?.kind ?? (card.head as { type?: unknown })?.type ?? t['head'];
  const items = [
    metaItem('classes', `${card.labels.length}: ${labels}`),
    metaItem('input', `${esc(card.input.kind)} [${card.input.shape.map(esc).join(' × ')}]${card.input.kind === 'features' ? `, ${card.input.columns.length} columns` : ''}`),
    metaItem('backbone', card.backbone ? `${esc(card.backbone.id)} at <code>${esc(card.backbone.cut)}</code>` : 'none (features as given)'),
    metaItem('head', headKind !== undefined ? esc(headKind) : '–'),
    metaItem('training', t['solver'] === 'lbfgs'
      ? `convex probe (${esc(String(t['loss'] ?? 'logistic'))}, L-BFGS), C ${num(t['C'], 3)} by ${num(t['folds'])}-fold CV, seed ${num(t['seed'])}`
      : `${num(t['epochsRun'] ?? t['epochs'])} epochs, lr ${num(t['lr'], 3)}, seed ${num(t['seed'])}`),
    metaItem('recorded metrics', [
      typeof m['trainAccuracy'] === 'number' ? `train acc ${pct(m['trainAccuracy'])}` : '',
      typeof m['valAccuracy'] === 'number' ? `val acc ${pct(m['valAccuracy'])}` : '',
      typeof m['valMacroF1'] === 'number' ? `val macro-F1 ${num(m['valMacroF1'], 3)}` : '',
    ].filter(Boolean).join(', ') || '–'),
    metaItem('examples', `${num(m['nTrain'])} train, ${num(m['nVal'])} validation`),
    metaItem('created', `${esc(card.createdAt)} (graft ${esc(card.graftVersion)})`),
  ];
  const title = o.title ?? `graft report: ${basename(resolve(o.modelDir ?? 'model'))}`;
  return `<h1>${esc(title)}</h1>
<p class="sub">${o.modelDir ? `Model folder <code>${esc(o.modelDir)}</code>. ` : ''}A ${esc(card.task)} model for ${card.labels.length} classes.</p>
<div class="meta">${items.join('\n')}</div>`;
}

function diagnosisSection(d: Diagnosis | null): string {
  if (!d) return '<h2>Diagnosis</h2>\n<p class="note">graft.json records no diagnosis for this model.</p>';
  const list = (xs: string[]) => (xs.length ? `<ul>${xs.map((x) => `<li>${esc(x)}</li>`).join('')}</ul>` : '<p class="sub">None.</p>');
  return `<h2>Diagnosis</h2>
<section data-section="diagnosis">
<p><span class="verdict v-${esc(d.verdict)}" data-verdict="${esc(d.verdict)}">${esc(d.verdict)}</span> ${esc(d.summary)}</p>
<div class="charts"><div><h3>Evidence</h3>${list(d.evidence)}</div><div><h3>Advice</h3>${list(d.advice)}</div></div>
</section>`;
}

function perClassTable(e: EvalResult): string {
  const rows = e.labels.map((l, c) => {
    const s = e.perClass[c]!;
    return `<tr><td>${esc(l)}</td><td>${s.precision.toFixed(3)}</td><td>${s.recall.toFixed(3)}</td><td>${s.f1.toFixed(3)}<span class="bar" style="width:${Math.round(60 * s.f1)}px"></span></td><td>${s.support}</td></tr>`;
  });
  const k = e.labels.length;
  const mean = (f: (s: EvalResult['perClass'][number]) => number) => e.perClass.reduce((a, s) => a + f(s), 0) / k;
  const total = e.perClass.reduce((a, s) => a + s.support, 0);
  const wmean = (f: (s: EvalResult['perClass'][number]) => number) => (total ? e.perClass.reduce((a, s) => a + f(s) * s.support, 0) / total : 0);
  return `<table data-table="per-class"><thead><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr></thead>
<tbody>
${rows.join('\n')}
<tr class="total"><td>macro average</td><td>${mean((s) => s.precision).toFixed(3)}</td><td>${mean((s) => s.recall).toFixed(3)}</td><td>${mean((s) => s.f1).toFixed(3)}</td><td>${total}</td></tr>
<tr><td>weighted average</td><td>${wmean((s) => s.precision).toFixed(3)}</td><td>${wmean((s) => s.recall).toFixed(3)}</td><td>${wmean((s) => s.f1).toFixed(3)}</td><td>${total}</td></tr>
<tr><td>accuracy</td><td></td><td></td><td>${e.accuracy.toFixed(3)}</td><td>${total}</td></tr>
</tbody></table>`;
}

function worstSection(e: EvalResult): string {
  if (!e.worst.length) return '<h3>Most confidently wrong examples</h3>\n<p class="note">No example was misclassified.</p>';
  const intro = `<p class="sub">The ${e.worst.length} misclassified examples the model was most sure about (highest probability for the wrong class).</p>`;
  if (e.worst.some((w) => w.path !== undefined)) {
    const figs = e.worst.map((w) => `<figure data-example="${w.index}">${w.thumbnail ? `<img src="${w.thumbnail}" alt="${esc(basename(w.path ?? ''))}">` : '<div class="sub">(no preview)</div>'}
<figcaption>predicted <span class="wrong">${esc(w.predicted)}</span> ${pct(w.confidence)}<br>true: ${esc(w.truth)} (${pct(w.truthProbability)})<br><span class="sub">${esc(basename(w.path ?? ''))}</span></figcaption></figure>`);
    return `<h3>Most confidently wrong examples</h3>\n${intro}\n<div class="worst">\n${figs.join('\n')}\n</div>`;
  }
  const rows = e.worst.map((w) => {
    const what = w.text !== undefined
      ? `<td class="text">${esc(w.text.length > 400 ? `${w.text.slice(0, 400)}…` : w.text)}</td>`
      : `<td class="values">${(w.values ?? []).slice(0, 64).map(([c, v]) => `${esc(c)}=${esc(Number.isInteger(v) ? v : +v.toPrecision(4))}`).join(', ')}${(w.values?.length ?? 0) > 64 ? `, … (${w.values!.length - 64} more)` : ''}</td>`;
    return `<tr data-example="${w.index}"><td>${w.line ?? '–'}</td><td class="l">${esc(w.truth)}</td><td class="l"><span class="wrong">${esc(w.predicted)}</span></td><td>${pct(w.confidence)}</td><td>${pct(w.truthProbability)}</td>${what}</tr>`;
  });
  return `<h3>Most confidently wrong examples</h3>\n${intro}
<table data-table="worst"><thead><tr><th>line</th><th class="l">true</th><th class="l">predicted</th><th>p(predicted)</th><th>p(true)</th><th style="text-align:left">${e.worst[0]!.text !== undefined ? 'text' : 'values'}</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<p class="sub">"line" is the line number in the data file (line 1 is the header).</p>`;
}

function evaluationSection(e: EvalResult | null, reason?: string): string {
  if (!e) return `<h2>Evaluation</h2>\n<p class="note" data-eval="none">No evaluation: ${esc(reason ?? 'no labelled data was given (pass --data).')}</p>`;
  return `<h2>Evaluation</h2>
<section data-section="evaluation">
<p class="note" data-eval-data="${esc(e.data)}">Evaluated on ${esc(e.description)}${e.origin === 'model card' ? ' (the training data recorded in graft.json; pass --data to use other data)' : ' (given with --data)'}.
${e.n} examples${e.skipped ? `, ${e.skipped} unreadable skipped` : ''}: accuracy <b>${pct(e.accuracy)}</b>, macro-F1 <b>${e.macroF1.toFixed(3)}</b>.</p>
${e.caveat ? `<p class="caveat">${esc(e.caveat)}</p>` : ''}
<h3>Confusion matrix</h3>
${heatmap(e.labels, e.confusion)}
<h3>Per-class scores</h3>
${perClassTable(e)}
${worstSection(e)}
</section>`;
}

/** The penalty search of a convex probe, with the protocol that ran, where graft.json records one. */
function penaltyPathOf(card: ModelCard): (Array<{ C: number; accuracy: number }> & { chosen: number; protocol: string }) | null {
  const t = (card.training ?? {}) as Record<string, unknown>;
  const path = t['penaltyPath'] as Array<{ C: number; accuracy: number }> | undefined;
  if (!Array.isArray(path) || !path.length || typeof t['C'] !== 'number') return null;
  const protocol = (t['protocol'] as { reason?: string } | undefined)?.reason;
  return Object.assign([...path], { chosen: t['C'] as number, protocol: protocol ? `Protocol: ${protocol}.` : '' });
}

/** The report page for a model card and its evaluation (null: none, with `noEvalReason`). */
export function renderReport(card: ModelCard, evalResult: EvalResult | null, o: ReportOptions = {}): string {
  const h = historyOf(card);
  const charts: ChartSpec[] = [];
  let curves: string;
  if (h.length) {
    const cs = learningCharts(h);
    charts.push(...cs);
    curves = `<div class="charts">${cs.map(chartBox).join('\n')}</div>`;
  } else {
    const path = penaltyPathOf(card);
    if (path) {
      // A convex probe has no epochs: its learning curve is the cross-validated accuracy along the penalty grid.
      const c: ChartSpec = {
        id: 'chart-penalty', title: 'Cross-validated accuracy against the L2 penalty', xLabel: 'C (inverse penalty, log scale)', yLabel: 'accuracy', xLog: true,
        series: [{ name: 'mean over folds', points: path.map((q) => [q.C, q.accuracy]) }, { name: `chosen C ${path.chosen.toPrecision(2)}`, points: [[path.chosen, path.find((q) => q.C === path.chosen)?.accuracy ?? null]], pointsOnly: true, color: '#d62728' }],
      };
      charts.push(c);
      curves = `<div class="charts">${chartBox(c)}</div><p class="sub">A convex probe (L-BFGS to convergence): left of the chosen C it underfits (too strong a penalty), right of it the penalty no longer holds it back. ${esc(path.protocol)}</p>`;
    } else {
      curves = '<p class="note">graft.json records no per-epoch history (a kNN head, for one, has no epochs).</p>';
    }
  }
  const lr = lrFindOf(card);
  let lrSection = '';
  if (lr) {
    const c = lrFindChart(lr);
    charts.push(c);
    lrSection = `<h2>Learning-rate finder</h2>
<section data-section="lr-find"><div class="charts">${chartBox(c)}</div>
<p class="sub">${lr.suggestion ? `Suggested learning rate: <b>${esc(lr.suggestion.toPrecision(3))}</b>. ` : ''}The loss over a sweep of learning rates; pick one where it still falls steeply, well before the minimum.</p></section>`;
  }
  const shift = shiftOf(card);
  let shiftSection = '';
  if (shift) {
    const pc = (x: number) => `${(100 * x).toFixed(0)}%`;
    const c: ChartSpec = {
      id: 'chart-shift', title: 'Source and target rows on their first two principal axes', xLabel: `axis 1 (${pc(shift.projection.explained[0])} of the variance)`, yLabel: `axis 2 (${pc(shift.projection.explained[1])})`,
      series: [
        { name: `source (${shift.projection.source.length} rows)`, points: shift.projection.source, pointsOnly: true, radius: 2 },
        { name: `target (${shift.projection.target.length} rows)`, points: shift.projection.target, pointsOnly: true, radius: 2 },
      ],
    };
    charts.push(c);
    shiftSection = `<h2>Domain shift</h2>
<section data-section="shift"><p>${esc(shift.words.charAt(0).toUpperCase() + shift.words.slice(1))}.</p><div class="charts">${chartBox(c)}</div>
<p class="sub">Adapted with <b>${esc(shift.method)}</b>. Where the two clouds do not overlap, a model trained on the source alone sees the target as new ground.</p></section>`;
  }
  const title = o.title ?? `graft report: ${basename(resolve(o.modelDir ?? 'model'))}`;
  const body = `${header(card, { ...o, title })}
${diagnosisSection(diagnosisOf(card))}
${shiftSection}
<h2>Learning curves</h2>
<section data-section="curves">${curves}</section>
${lrSection}
${evaluationSection(evalResult, o.noEvalReason)}
<footer>Generated by graft ${esc(GRAFT_VERSION)} on ${esc((o.generatedAt ?? new Date()).toISOString())}. A self-contained page: charts drawn by Chart.js, inlined.</footer>`;
  return page(title, body, charts);
}

/** Writes the report of a model card (and its evaluation) to outPath, atomically. */
export function writeReport(card: ModelCard, evalResult: EvalResult | null, outPath: string, o: ReportOptions = {}): string {
  writeFileAtomic(outPath, renderReport(card, evalResult, o));
  return outPath;
}

export interface ReportCommandOptions extends EvaluateOptions {
  dir: string;
  /** Default: DIR/report.html. */
  out?: string;
}

export interface ReportCommandResult {
  out: string;
  data: string | null;
  description: string | null;
  n: number;
  accuracy: number | null;
  macroF1: number | null;
  note?: string;
}

/** `graft report DIR [--data PATH] [--out FILE.html]`: evaluate and write the report. */
export async function reportCommand(o: ReportCommandOptions): Promise<ReportCommandResult> {
  const card = readCard(o.dir);
  const out = o.out ?? join(o.dir, 'report.html');
  const ev = await evaluateForReport(o.dir, o);
  writeReport(card, ev.result, out, { modelDir: o.dir, ...(ev.reason ? { noEvalReason: ev.reason } : {}) });
  const e = ev.result;
  return {
    out, data: e?.data ?? null, description: e?.description ?? null, n: e?.n ?? 0, accuracy: e?.accuracy ?? null, macroF1: e?.macroF1 ?? null,
    ...(ev.reason ? { note: ev.reason } : {}),
  };
}

// ---- comparison reports ----

export type Cell = string | number | null | undefined;

export interface ComparisonInput {
  title: string;
  /** Paragraphs under the title. */
  notes?: string[];
  /** The results table: one object per row; columns in the order of the first row's keys. */
  table: Record<string, Cell>[];
  /** Display names of columns (default: camelCase split into words). */
  columnNames?: Record<string, string>;
  /**
   * Label-budget curves: x values and one series per method. Default: from the table, its first
   * column as x (labels per class) and every other all-numeric column as a method.
   */
  budget?: { x: number[]; series: Record<string, number[]>; xLabel?: string; yLabel?: string } | null;
  /** Per-method learning curves: method -> value per epoch (e.g. validation accuracy). */
  curves?: Record<string, number[]>;
  curvesTitle?: string;
  curvesYLabel?: string;
  generatedAt?: Date;
}

/** camelCase identifiers as words ("scratchCnn" -> "scratch cnn"); other names stay as they are. */
const words = (k: string) => (!/^[a-z][A-Za-z0-9_]*$/.test(k) ? k : k.replace(/([a-z0-9])([A-Z])/g, '$1 $2').replace(/_+/g, ' ').toLowerCase());
const isFrac = (xs: number[]) => xs.length > 0 && xs.every((x) => x >= 0 && x <= 1);

function cellText(v: Cell, fracColumn: boolean): string {
  if (v === null || v === undefined) return '–';
  if (typeof v === 'string') return esc(v);
  if (!Number.isFinite(v)) return '–';
  if (Number.isInteger(v) && !fracColumn) return String(v);
  return fracColumn ? pct(v) : esc(v.toPrecision(4));
}

/** The comparison page (table, label-budget chart, per-method learning curves). */
export function renderComparisonReport(c: ComparisonInput): string {
  const cols = c.table.length ? Object.keys(c.table[0]!) : [];
  const name = (k: string) => c.columnNames?.[k] ?? words(k);
  const numeric = (k: string) => c.table.every((r) => typeof r[k] === 'number' || r[k] === null || r[k] === undefined) && c.table.some((r) => typeof r[k] === 'number');
  const values = (k: string) => c.table.map((r) => r[k]).filter((v): v is number => typeof v === 'number');
  const frac = new Map(cols.map((k, i) => [k, i > 0 && numeric(k) && isFrac(values(k)) && values(k).some((v) => !Number.isInteger(v))]));
  const table = cols.length
    ? `<table data-table="comparison"><thead><tr>${cols.map((k) => `<th>${esc(name(k))}</th>`).join('')}</tr></thead>
<tbody>
${c.table.map((r) => `<tr>${cols.map((k) => `<td>${cellText(r[k], frac.get(k)!)}</td>`).join('')}</tr>`).join('\n')}
</tbody></table>`
    : '<p class="note">No results.</p>';

  const charts: ChartSpec[] = [];
  // One colour per method across both charts (names compared by their letters and digits).
  const colours = new Map<string, string>();
  const colour = (n: string) => {
    const key = n.toLowerCase().replace(/[^a-z0-9]/g, '');
    if (!colours.has(key)) colours.set(key, PALETTE[colours.size % PALETTE.length]!);
    return colours.get(key)!;
  };
  let budget = c.budget;
  if (budget === undefined && cols.length >= 2 && c.table.length >= 2 && numeric(cols[0]!)) {
    const xk = cols[0]!;
    const methods = cols.slice(1).filter(numeric);
    if (methods.length) {
      budget = {
        x: c.table.map((r) => Number(r[xk])), xLabel: name(xk),
        series: Object.fromEntries(methods.map((m) => [name(m), c.table.map((r) => (typeof r[m] === 'number' ? r[m] : NaN))])),
      };
    }
  }
  if (budget) {
    const all = Object.values(budget.series).flat().filter(Number.isFinite);
    const percent = isFrac(all);
    const xs = budget.x;
    charts.push({
      id: 'chart-budget', title: `${budget.yLabel ?? 'Accuracy'} vs ${budget.xLabel ?? 'labels per class'}`, xLabel: budget.xLabel ?? 'labels per class',
      yLabel: budget.yLabel ?? 'test accuracy', percent, xInteger: xs.every(Number.isInteger),
      xLog: xs.length >= 3 && xs.every((x) => x > 0) && Math.max(...xs) / Math.min(...xs) >= 16, xLogTicks: '125',
      ...(percent ? { yMin: 0, yMax: 1 } : {}),
      series: Object.entries(budget.series).map(([n, ys]) => ({ name: n, color: colour(n), points: xs.map((x, i): [number, number | null] => [x, finite(ys[i])]) })),
    });
  }
  if (c.curves && Object.keys(c.curves).length) {
    const all = Object.values(c.curves).flat().filter(Number.isFinite);
    const percent = isFrac(all);
    charts.push({
      id: 'chart-curves', title: c.curvesTitle ?? 'Learning curves', xLabel: 'epoch', yLabel: c.curvesYLabel ?? 'validation accuracy', xInteger: true, percent,
      ...(percent ? { yMin: 0, yMax: 1 } : {}),
      series: Object.entries(c.curves).map(([n, ys]) => ({ name: words(n), color: colour(words(n)), points: ys.map((y, i): [number, number | null] => [i + 1, finite(y)]) })),
    });
  }
  const body = `<h1>${esc(c.title)}</h1>
${(c.notes ?? []).map((n) => `<p class="sub">${esc(n)}</p>`).join('\n')}
<h2>Results</h2>
<section data-section="table">${table}</section>
${charts.length ? `<h2>Curves</h2>\n<section data-section="curves"><div class="charts">${charts.map(chartBox).join('\n')}</div></section>` : ''}
<footer>Generated by graft ${esc(GRAFT_VERSION)} on ${esc((c.generatedAt ?? new Date()).toISOString())}. A self-contained page: charts drawn by Chart.js, inlined.</footer>`;
  return page(c.title, body, charts);
}

/** Writes a comparison report (e.g. the demo's table and curves) to outPath, atomically. */
export function writeComparisonReport(outPath: string, c: ComparisonInput): string {
  writeFileAtomic(outPath, renderComparisonReport(c));
  return outPath;
}

/** A page with the learning-rate finder's loss-versus-lr plot and its suggestion (graft lr-find). */
export function writeLrFindReport(outPath: string, f: LrFind, o: { title?: string; notes?: string[] } = {}): string {
  const c = lrFindChart(f);
  const title = o.title ?? 'graft lr-find';
  const body = `<h1>${esc(title)}</h1>
${(o.notes ?? []).map((n) => `<p class="sub">${esc(n)}</p>`).join('\n')}
<h2>Learning-rate finder</h2>
<section data-section="lr-find"><div class="charts">${chartBox(c)}</div>
<p class="sub">${f.suggestion ? `Suggested learning rate: <b>${esc(f.suggestion.toPrecision(3))}</b>. ` : ''}The loss over a sweep of learning rates; pick one where it still falls steeply, well before the minimum.</p></section>
<footer>Generated by graft ${esc(GRAFT_VERSION)} on ${esc(new Date().toISOString())}.</footer>`;
  writeFileAtomic(outPath, page(title, body, [c]));
  return outPath;
}
