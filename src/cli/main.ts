/**
 * The graft command line. It calls only the public API (src/index.ts): each command's option table
 * (cli/commands.ts) parses its arguments into API options, and the API's task table decides what the
 * data is. With --json the last line on stdout is one JSON object; progress goes to stderr. Errors
 * print as `error [CODE]: message` plus a hint, with exit code 2 and no stack trace.
 */
import {
  type EvaluateResult, type PredictResult, type TrainOptions,
  adapt, backbone, backbones, dataKind, embed, evaluate, isGraftError, lrFind, planTrain, predict, rank, report,
} from '../index.ts';
import { type ServeOptions, serve } from '../serve/server.ts';
import { runDemo } from './demo.ts';
import { COMMANDS, topHelp } from './commands.ts';
import { type Values, apiOptions, commandHelp, didYouMean, parseCommand, usage, wantsHelp } from './options.ts';

type Print = (s: string) => void;

async function trainCommand(data: string, o: TrainOptions, json: boolean, print: Print): Promise<number> {
  const plan = planTrain(data, o);
  const cvLine = (r: { cvAccuracy: number | null; cvStd: number | null; protocol: { reason: string } }) => {
    print(`protocol: ${r.protocol.reason}`);
    if (r.cvAccuracy !== null) print(`cross-validated accuracy ${r.cvAccuracy.toFixed(4)} +- ${r.cvStd!.toFixed(4)} (the estimate for new data${r.protocol.reason.startsWith('the smallest') ? '' : ' from the training part'})`);
  };
  const diagnosis = (d: { summary: string; advice: string[] }, advice = true) => {
    print(`diagnosis: ${d.summary}`);
    if (advice) for (const a of d.advice) print(`  - ${a}`);
  };
  switch (plan.trainer) {
    case 'text-finetune': {
      const r = await plan.run();
      if (json) return print(JSON.stringify(r)), 0;
      print(`saved ${r.out}: ${r.backbone} ${r.task} (${r.mode}), trained [${r.trainedGroups.join(', ')}], ${r.labels.length} ${r.task === 'ner' ? 'tags' : 'classes'}, ${r.seconds.toFixed(1)} s`);
      if (r.ner) print(`validation entities: precision ${r.ner.micro.precision.toFixed(4)}, recall ${r.ner.micro.recall.toFixed(4)}, F1 ${r.ner.micro.f1.toFixed(4)} (${r.ner.micro.support} entities)`);
      if (r.trainAccuracy !== null) print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
      if (r.truncated) print(`${r.truncated} example(s) truncated to the encoder's token limit`);
      if (r.note) print(`note: ${r.note}`);
      diagnosis(r.diagnosis);
      return 0;
    }
    case 'image-finetune': {
      const r = await plan.run();
      if (json) return print(JSON.stringify(r)), 0;
      print(`saved ${r.out}: ${r.backbone} ${r.mode}, trained [${r.trainedGroups.join(', ')}], ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
      print(r.cachedPrefix ? `cached prefix: ${r.cachedPrefix}` : 'no cached prefix (augmentation on, or every group trained)');
      print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
      diagnosis(r.diagnosis);
      return 0;
    }
    case 'image-probe':
    case 'audio-probe': {
      const r = await plan.run();
      if (json) return print(JSON.stringify(r)), 0;
      print(`saved ${r.out}: ${r.backbone} cut ${r.cut} + ${r.head} head, ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
      cvLine(r);
      print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
      diagnosis(r.diagnosis);
      return 0;
    }
    case 'text-probe': {
      const r = await plan.run();
      if (json) return print(JSON.stringify(r)), 0;
      print(`saved ${r.out}: ${r.backbone} ${r.cut} pooling + ${r.head} head, ${r.labels.length} classes, ${r.seconds.toFixed(1)} s`);
      cvLine(r);
      print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}` : ''}`);
      if (r.truncated) print(`${r.truncated} text(s) truncated to the encoder's token limit`);
      diagnosis(r.diagnosis, false);
      return 0;
    }
    case 'tabular': {
      const r = await plan.run();
      if (json) return print(JSON.stringify(r)), 0;
      print(`saved ${r.out} (${r.labels.length} classes, ${r.epochs} epochs${r.stoppedEarly ? ', stopped early' : ''}, ${r.seconds.toFixed(1)} s)`);
      print(`train accuracy ${r.trainAccuracy.toFixed(4)}${r.valAccuracy !== null ? `, validation accuracy ${r.valAccuracy.toFixed(4)}, macro-F1 ${r.valMacroF1!.toFixed(4)}` : ''}`);
      diagnosis(r.diagnosis);
      return 0;
    }
  }
}

function printEvaluation(r: EvaluateResult, json: boolean, print: Print): void {
  if (json) return print(JSON.stringify(r));
  if ('micro' in r) {
    print(`entities: precision ${r.micro.precision.toFixed(4)}  recall ${r.micro.recall.toFixed(4)}  F1 ${r.micro.f1.toFixed(4)}  (${r.micro.support} entities, ${r.n} sentences)`);
    for (const [type, sc] of Object.entries(r.perType)) print(`  ${type.padEnd(10)} P ${sc.precision.toFixed(4)}  R ${sc.recall.toFixed(4)}  F1 ${sc.f1.toFixed(4)}  n ${sc.support}`);
  } else print(`accuracy ${r.accuracy.toFixed(4)}  macro-F1 ${r.macroF1.toFixed(4)}  n ${r.n}`);
}

function printPredictions(r: PredictResult, json: boolean, print: Print): void {
  if (r.task === 'ner') {
    if (json) return print(JSON.stringify({ predictions: r.predictions.map((x) => ({ text: x.text, entities: x.entities })) }));
    r.predictions.forEach((x, i) => {
      print(`text ${i + 1}: ${x.entities.length} entit${x.entities.length === 1 ? 'y' : 'ies'}`);
      for (const e of x.entities) print(`  ${e.type}\t${e.start}-${e.end}\t${JSON.stringify(e.text)}\t${e.score.toFixed(4)}`);
    });
    return;
  }
  if (json) return print(JSON.stringify({ predictions: r.predictions }));
  for (const p of r.predictions) print(`${p.label}\t${p.probabilities[p.label]!.toFixed(4)}`);
}

async function backbonesCommand(pos: string[], json: boolean, print: Print): Promise<number> {
  if (pos[0] === 'show') {
    if (!pos[1]) throw usage('graft backbones show takes a backbone id', 'backbones');
    const e = await backbone(pos[1]);
    if (json) return print(JSON.stringify(e)), 0;
    const { groups, candidates } = e;
    print(`${e.id} (${e.modality}): ${e.description}`);
    print(`  package ${e.package.name}@${e.package.version}, licence ${e.license}`);
    print(`  input ${e.input}; output ${e.outputDim}-d; default cut ${e.defaultCut}`);
    if (e.preprocess) print(`  preprocessing: resize ${e.preprocess.resize} to ${e.preprocess.size.join('x')}, pixel*${e.preprocess.scale.toPrecision(4)}, mean [${e.preprocess.mean}], std [${e.preprocess.std}]`);
    print('  cut points (early to late):');
    for (const c of e.cuts) print(`    ${c.name.padEnd(22)} ${String(c.dim).padStart(5)}-d${c.note ? `  ${c.note}` : ''}`);
    if (candidates.length) {
      print(`  candidate cuts searched by graft train and graft rank (${candidates.length}: every block output, pooled by mean, and by mean+max as NAME:meanmax; --cut takes any tensor name):`);
      const names = candidates.filter((c) => !c.name.includes(':')).map((c) => `${c.name} (${c.dim})`);
      for (let i = 0; i < names.length; i += 4) print(`    ${names.slice(i, i + 4).join(', ')}`);
    }
    if (groups.length) {
      print('  layer groups for fine-tuning (input to output; --unfreeze N trains the top N, plus the head):');
      groups.forEach((g, i) => print(`    ${String(i).padStart(2)} ${g.name.padEnd(10)} ${String(g.params).padStart(9)} weights${g.entry ? `  input ${g.entry} [${g.entryShape?.join('x') ?? '?'}]` : ''}`));
      print(`    ${String(groups.length).padStart(2)} head       the new classifier`);
    }
    print('  files:');
    for (const f of e.files) print(`    ${f.path}  sha256 ${f.sha256.slice(0, 16)}…`);
    return 0;
  }
  const all = backbones();
  if (json) print(JSON.stringify(all.map((e) => ({ id: e.id, modality: e.modality, outputDim: e.outputDim, cuts: e.cuts.map((c) => c.name) }))));
  else {
    const w = Math.max(...all.map((e) => e.id.length));
    for (const e of all) print(`${e.id.padEnd(w)} ${e.modality.padEnd(6)} ${String(e.outputDim).padStart(5)}-d  ${e.description}`);
  }
  return 0;
}

export async function main(argv: string[], out: NodeJS.WritableStream = process.stdout, err: NodeJS.WritableStream = process.stderr): Promise<number> {
  const print = (s: string) => out.write(s + '\n');
  const log = (s: string) => err.write(s + '\n');
  try {
    const [cmd, ...rest] = argv;
    if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
      const spec = cmd === 'help' && rest[0] ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
      print(spec ? commandHelp(spec) : topHelp());
      return cmd ? 0 : 2;
    }
    const spec = COMMANDS.find((c) => c.name === cmd);
    if (!spec) {
      const near = didYouMean(cmd, COMMANDS.map((c) => c.name));
      throw usage(`unknown command "${cmd}"`, undefined, near ? `did you mean graft ${near}? (graft --help lists the commands)` : undefined);
    }
    if (wantsHelp(rest)) {
      print(commandHelp(spec));
      return 0;
    }
    const { values: v, positionals: pos } = parseCommand(spec, rest, COMMANDS);
    const json = v['json'] === true;
    const progress = { log, progressBar: true } as const;
    const api = <T>(values: Values) => ({ ...apiOptions(spec, values), ...progress }) as T;
    switch (cmd) {
      case 'train': {
        if (pos.length !== 1) throw usage('graft train takes one CSV file or image folder', cmd);
        return await trainCommand(pos[0]!, api<TrainOptions>(v), json, print);
      }
      case 'eval': {
        if (pos.length !== 2) throw usage('graft eval takes a model folder and a CSV file', cmd);
        printEvaluation(await evaluate(pos[0]!, pos[1]!, api(v)), json, print);
        return 0;
      }
      case 'predict': {
        if (pos.length !== 2) throw usage('graft predict takes a model folder and a CSV file', cmd);
        printPredictions(await predict(pos[0]!, pos[1]!, api(v)), json, print);
        return 0;
      }
      case 'backbones':
        return await backbonesCommand(pos, json, print);
      case 'rank': {
        if (pos.length !== 1) throw usage('graft rank takes one image folder or text file', cmd);
        const r = await rank(pos[0]!, api(v));
        if (json) return print(JSON.stringify(r)), 0;
        const pct = (x: number | null) => (x === null ? '     -' : `${(100 * x).toFixed(1).padStart(5)}%`);
        print(`${r.n} examples, ${r.classes.length} classes; ${r.ranking.length} backbone x cut candidates, best first (CV: ${r.ranking.filter((q) => q.cvAccuracy !== null).length} probed by k-fold cross-validation)`);
        print(`${'backbone'.padEnd(16)} ${'cut'.padEnd(30)} ${'dim'.padStart(5)} ${'CV acc'.padStart(7)} ${'LogME'.padStart(8)} ${'H-score'.padStart(8)} ${'kNN'.padStart(6)} ${'LEEP'.padStart(7)} ${'NCE'.padStart(7)}`);
        const f = (x: number | undefined, w: number, dp = 3) => (x === undefined ? '-'.padStart(w) : x.toFixed(dp).padStart(w));
        for (const q of r.ranking.slice(0, v['all'] ? undefined : 15)) {
          print(`${q.backbone.padEnd(16)} ${q.cut.padEnd(30)} ${String(q.dim).padStart(5)} ${pct(q.cvAccuracy).padStart(7)} ${f(q.scores.logme, 8)} ${f(q.scores.hScore, 8, 2)} ${f(q.scores.knn, 6)} ${f(q.scores.leep, 7)} ${f(q.scores.nce, 7)}`);
        }
        if (r.ranking.length > 15 && !v['all']) print(`… ${r.ranking.length - 15} more (--all, or --json)`);
        print(`baseline without transfer: ${r.baseline.kind} (${r.baseline.dim}-d), ${pct(r.baseline.cvAccuracy)} +- ${(100 * r.baseline.cvStd).toFixed(1)} cross-validated`);
        print(`${r.negativeTransfer ? 'warning: ' : ''}${r.verdict}`);
        return 0;
      }
      case 'adapt': {
        if (pos.length !== 1 || !v['target']) throw usage('graft adapt takes a source CSV and --target CSV', cmd);
        const r = await adapt(pos[0]!, api(v));
        if (json) return print(JSON.stringify(r)), 0;
        const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
        print(`shift: ${r.shift.words}`);
        print(`adapted with ${r.method}${r.pseudoLabelled ? ` (${r.pseudoLabelled} pseudo-labelled target rows)` : ''}: ${r.nSource} source rows, ${r.nTarget} target rows, source CV accuracy ${r.sourceCvAccuracy === null ? '-' : pct(r.sourceCvAccuracy)}`);
        if (r.targetAccuracy !== null) print(`target accuracy ${pct(r.targetAccuracy)}, source-only ${pct(r.sourceOnlyTargetAccuracy!)} (from the target's labels, which nothing else read)`);
        print(`wrote ${r.out} in ${r.seconds.toFixed(1)} s`);
        return 0;
      }
      case 'embed': {
        if (pos.length < 1 || !v['out']) throw usage('graft embed takes an image folder (or image files) and --out FILE', cmd);
        const r = await embed(pos.length === 1 ? pos[0]! : pos, api(v));
        print(json ? JSON.stringify(r) : `wrote ${r.out}: ${r.n} x ${r.dim} features${r.labelled ? '' : ' and file names, no labels'} (${r.cacheHits} from the cache, ${r.skipped} skipped) in ${r.seconds.toFixed(1)} s`);
        return 0;
      }
      case 'report': {
        if (pos.length !== 1) throw usage('graft report takes one model folder (and --data, --out)', cmd);
        const r = await report(pos[0]!, api(v));
        print(json ? JSON.stringify(r) : `wrote ${r.out}${r.data ? ` (evaluated on ${r.description}: accuracy ${r.accuracy!.toFixed(4)}, macro-F1 ${r.macroF1!.toFixed(4)})` : ` (${r.note ?? 'no evaluation'})`}`);
        return 0;
      }
      case 'lr-find': {
        if (pos.length !== 1 || dataKind(pos[0]!) !== 'images') throw usage('graft lr-find takes one image folder', cmd);
        const r = await lrFind(pos[0]!, { report: 'lr-find.html', ...api(v) });
        const outPath = r.report!;
        print(json ? JSON.stringify({ suggestion: r.suggestion, minOver10: r.minOver10, report: outPath, lrs: r.lrs, losses: r.losses })
          : `suggested learning rate ${r.suggestion.toPrecision(3)} (steepest descent; minimum/10: ${r.minOver10.toPrecision(3)}); plot in ${outPath}`);
        return 0;
      }
      case 'serve': {
        if (pos.length < 1) throw usage('graft serve takes one or more model folders (or NAME=DIR)', cmd);
        const o = apiOptions(spec, v) as ServeOptions;
        const token = o.token ?? process.env['GRAFT_SERVE_TOKEN'];
        const h = await serve(pos, { ...o, ...(token ? { token } : {}), log });
        print(`listening on ${h.url} (models: ${h.models.join(', ')})`);
        await new Promise<void>((res) => {
          const stop = (sig: string) => {
            log(`${sig}: finishing in-flight requests`);
            void h.close().then(res);
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
        });
        log('stopped');
        return 0;
      }
      case 'demo':
        return await runDemo(print, log, typeof v['out'] === 'string' ? v['out'] : 'graft-demo-report.html');
      default:
        throw usage(`unknown command "${cmd}"`);
    }
  } catch (e) {
    if (isGraftError(e)) {
      log(`error [${e.code}]: ${e.message}`);
      log(`hint: ${e.hint}`);
      return 2;
    }
    log(`internal error: ${(e as Error).message}`);
    log('hint: this is a bug in graft; please report it with the command you ran.');
    if (process.env['GRAFT_DEBUG']) log((e as Error).stack ?? '');
    return 1;
  }
}
