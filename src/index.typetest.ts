/**
 * A type test of the public API, compiled by `tsc --noEmit` (never run): the main verbs as a consumer
 * calls them, and wrong option names or values that must not compile.
 */
import {
  type EvaluateResult, type PredictResult, type Predictor, type TrainPlan,
  backbones, embed, evaluate, fineTune, loadModel, planTrain, predict, rank, train,
} from './index.ts';

export async function consumer(): Promise<void> {
  const ac = new AbortController();
  const r = await train('digits.csv', { out: 'model', head: 'mlp', epochs: 20, signal: ac.signal, onProgress: (e) => void e.type });
  const labels: string[] = r.labels;
  const plan: TrainPlan = planTrain('photos/', { mode: 'finetune', unfreeze: 2 });
  if (plan.trainer === 'image-finetune') {
    const f = await plan.run();
    const prefix: string | null = f.cachedPrefix;
    void prefix;
  }
  const ft = await fineTune('texts.csv', { backbone: 'enc/', task: 'pair' });
  const ev: EvaluateResult = await evaluate('model', 'test.csv');
  const p: PredictResult = await predict('model', { texts: ['hello'] });
  if (p.task === 'images') void p.predictions[0]?.path;
  const m: Predictor = await loadModel('model');
  await m.predict({ rows: [{ a: 1 }] });
  await m.dispose();
  await rank('photos/', { top: 2 });
  await embed('photos/', { out: 'f.safetensors' });
  void [labels, ft, ev, backbones()];

  // @ts-expect-error: a wrong option name (epochs) does not compile
  await train('digits.csv', { epoch: 20 });
  // @ts-expect-error: a head graft does not have
  await train('digits.csv', { head: 'resnet' });
  // @ts-expect-error: fineTune takes no probe mode
  await fineTune('photos/', { mode: 'probe' });
  // @ts-expect-error: embed needs out
  await embed('photos/', {});
  // @ts-expect-error: predict inputs are a path, files, texts or rows
  await predict('model', { pixels: [1, 2, 3] });
}
