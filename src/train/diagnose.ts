/**
 * Over- and underfitting diagnosis from learning curves: a verdict in words, the evidence behind it,
 * and the advice that fits. It reads the train/validation gap, where the validation loss bottomed
 * out, whether the curves were still falling, and how far training accuracy is above chance.
 */
import type { EpochRecord } from './callbacks.ts';

export type Verdict = 'overfitting' | 'underfitting' | 'not-converged' | 'unstable' | 'good-fit' | 'no-validation';

export interface DiagnosisInput {
  history: EpochRecord[];
  trainAccuracy: number;
  valAccuracy?: number | null;
  classes: number;
  nTrain: number;
  /** What was trained: 'head' for a probe on frozen features, or the trained layer groups. */
  trained?: string[];
  /** Whether the backbone has a later cut or more groups that could be used. */
  canFineTune?: boolean;
}

export interface Diagnosis {
  verdict: Verdict;
  summary: string;
  evidence: string[];
  advice: string[];
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function diagnose(d: DiagnosisInput): Diagnosis {
  const h = d.history;
  const chance = 1 / Math.max(2, d.classes);
  const evidence: string[] = [];
  const headOnly = !d.trained || (d.trained.length === 1 && d.trained[0] === 'head');
  evidence.push(`training accuracy ${pct(d.trainAccuracy)} (chance ${pct(chance)})`);
  if (!headOnly) evidence.push(`trained layer groups: ${d.trained!.join(', ')}`);
  if (d.valAccuracy === undefined || d.valAccuracy === null || !h.some((r) => r.valLoss !== undefined)) {
    return {
      verdict: 'no-validation', summary: 'No validation data, so over- or underfitting cannot be told apart.', evidence,
      advice: ['Hold out data for validation (e.g. --val 0.2) to get a diagnosis and early stopping.'],
    };
  }
  const val = d.valAccuracy;
  const gap = d.trainAccuracy - val;
  evidence.push(`validation accuracy ${pct(val)}, a gap of ${(100 * gap).toFixed(1)} points`);
  const vl = h.map((r) => r.valLoss!).filter(Number.isFinite);
  const best = vl.indexOf(Math.min(...vl));
  const last = vl.length - 1;
  if (vl.length >= 3) {
    const up = (vl[last]! / vl[best]! - 1) * 100;
    const end = best === last ? '' : up >= 1 ? ` and ${up.toFixed(0)}% higher at the end` : ', about the same at the end';
    evidence.push(`validation loss was lowest at epoch ${best + 1} of ${vl.length}${end}`);
  }
  const rising = vl.length >= 4 && best < last - 1 && vl[last]! > vl[best]! * 1.1;
  const tl = h.map((r) => r.trainLoss);
  const tail = Math.max(2, Math.floor(h.length / 4));
  const stillFalling = h.length >= 3 && vl.length >= 3 && vl[last]! < vl[Math.max(0, last - tail)]! * 0.97 && best >= last - 1;
  // Jumps: epochs whose training loss rose by half or more over the previous epoch, by a margin that
  // matters next to where it started (tiny losses wobble without being unstable).
  const jumps = tl.filter((x, i) => i > 0 && x > tl[i - 1]! * 1.5 && x - tl[i - 1]! > 0.1 * tl[0]!).length;
  const lowFit = d.trainAccuracy < chance + 0.6 * (1 - chance);

  let verdict: Verdict;
  let summary: string;
  const advice: string[] = [];
  if (tl.some((x) => !Number.isFinite(x)) || jumps >= 2) {
    verdict = 'unstable';
    summary = 'Training was unstable: the loss jumped around instead of settling.';
    advice.push('Lower the learning rate (graft lr-find suggests one).', 'Use a schedule with warm-up (one-cycle).');
  } else if (gap > 0.1 || rising) {
    verdict = 'overfitting';
    // Rising validation loss with close accuracies is overfitting in confidence, not yet in accuracy.
    summary = gap > 0.1
      ? `Overfitting: the model fits the training data (${pct(d.trainAccuracy)}) much better than new data (${pct(val)}).`
      : `Overfitting: validation loss rose after epoch ${best + 1} while training went on (accuracy ${pct(d.trainAccuracy)} training, ${pct(val)} validation): the model grows overconfident on new data.`;
    advice.push('Add regularisation: more dropout, weight decay, or label smoothing.');
    advice.push(headOnly ? 'Try an earlier cut (more general features) or a linear head instead of an MLP.' : 'Freeze more layer groups, or use L2-SP to stay close to the pretrained weights.');
    advice.push('Use data augmentation, and more labelled data if you can get it.');
    if (rising) advice.push(`Stop earlier: validation loss was best at epoch ${best + 1} (early stopping restores it).`);
  } else if (lowFit) {
    verdict = 'underfitting';
    summary = `Underfitting: even on the training data the model reaches only ${pct(d.trainAccuracy)}.`;
    advice.push('Give the head more capacity (an MLP head, more hidden units) and train longer or with a higher learning rate.');
    advice.push(headOnly ? 'Try a later cut, or fine-tune the top layer groups: the frozen features may not separate these classes.'
      : d.canFineTune !== false ? `Unfreeze more layer groups (${d.trained!.length - 1} of the backbone's were trained; raise --unfreeze), or raise the learning rate.` : 'Train longer or with a higher learning rate: every layer group already trains.');
  } else if (stillFalling) {
    verdict = 'not-converged';
    summary = 'Not converged yet: the validation loss was still falling when training stopped.';
    advice.push('Train for more epochs.');
  } else {
    verdict = 'good-fit';
    summary = `A good fit: training and validation accuracy are close (${pct(d.trainAccuracy)} vs ${pct(val)}).`;
    if (val < 0.95 && (d.canFineTune ?? headOnly)) advice.push(headOnly ? 'To go further, fine-tune the top layer groups of the backbone.' : 'To go further, unfreeze more layer groups (raise --unfreeze).');
    if (d.nTrain < 50 * d.classes) advice.push('More labelled data per class is the surest way to improve.');
  }
  return { verdict, summary, evidence, advice };
}

export interface ConvexDiagnosisInput {
  trainAccuracy: number;
  /** Held-out accuracy: cross-validated (protocol 'cv') or on the validation split. */
  heldOut: number | null;
  heldOutStd?: number | null;
  protocol: 'cv' | 'holdout';
  classes: number;
  nTrain: number;
  /** The penalty search: accuracy per C, strongest penalty (smallest C) first. */
  path: { C: number; accuracy: number }[];
  C: number;
  canFineTune?: boolean;
}

/**
 * Diagnosis of a convex probe: no learning curve, but the train/held-out gap and the penalty search
 * say the same things. The chosen C at the weak end of the grid means more capacity would still help;
 * held-out accuracy well below training accuracy means the features let the probe memorise.
 */
export function diagnoseConvex(d: ConvexDiagnosisInput): Diagnosis {
  const chance = 1 / Math.max(2, d.classes);
  const evidence = [`training accuracy ${pct(d.trainAccuracy)} (chance ${pct(chance)})`];
  const held = d.protocol === 'cv' ? 'cross-validated' : 'validation';
  if (d.heldOut === null) {
    return { verdict: 'no-validation', summary: 'No held-out estimate, so over- or underfitting cannot be told apart.', evidence, advice: ['Give every class at least two examples so the penalty can be cross-validated.'] };
  }
  const gap = d.trainAccuracy - d.heldOut;
  evidence.push(`${held} accuracy ${pct(d.heldOut)}${d.heldOutStd != null ? ` +- ${pct(d.heldOutStd)} over folds` : ''}, a gap of ${(100 * gap).toFixed(1)} points`);
  const at = d.path.findIndex((p) => p.C === d.C);
  if (d.path.length > 1) evidence.push(`L2 penalty chosen by cross-validation: C = ${d.C.toPrecision(2)} (${at + 1} of ${d.path.length} on the grid, strongest penalty first)`);
  const weakEnd = d.path.length > 1 && at === d.path.length - 1;
  const lowFit = d.trainAccuracy < chance + 0.6 * (1 - chance);
  const advice: string[] = [];
  let verdict: Verdict;
  let summary: string;
  if (lowFit || (weakEnd && gap < 0.05)) {
    verdict = 'underfitting';
    summary = lowFit ? `Underfitting: even on the training data the linear probe reaches only ${pct(d.trainAccuracy)}.`
      : `Underfitting: the weakest penalty on the grid won, and training and ${held} accuracy are close (${pct(d.trainAccuracy)} vs ${pct(d.heldOut)}): a linear head on these features has no capacity to spare.`;
    advice.push('Try another cut or backbone (graft rank compares them), an MLP head, or fine-tune the top layer groups.');
  } else if (gap > 0.15) {
    verdict = 'overfitting';
    summary = `Overfitting: the probe fits the training data (${pct(d.trainAccuracy)}) much better than held-out data (${pct(d.heldOut)}), even with the penalty cross-validation chose.`;
    advice.push('More labelled examples per class help most; an earlier cut (more general features) or another backbone may generalise better.');
    if (d.nTrain < 50 * d.classes) advice.push(`With ${d.nTrain} examples for ${d.classes} classes, expect a wide spread between splits.`);
  } else {
    verdict = 'good-fit';
    summary = `A good fit: the penalty chosen by cross-validation balances training and ${held} accuracy (${pct(d.trainAccuracy)} vs ${pct(d.heldOut)}).`;
    if (d.heldOut < 0.95 && d.canFineTune !== false) advice.push('To go further, fine-tune the top layer groups of the backbone (--mode finetune starts from this probe).');
    if (d.nTrain < 50 * d.classes) advice.push('More labelled data per class is the surest way to improve.');
  }
  return { verdict, summary, evidence, advice };
}
