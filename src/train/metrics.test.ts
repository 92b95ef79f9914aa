import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accuracy, argmaxRows, confusionMatrix, macroF1, perClass } from './metrics.ts';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} vs ${b}`);

/*
 * Reference values from sklearn 1.2.1 (/usr/bin/python3, Debian python3-sklearn), with L = range(k):
 *   accuracy_score(yt, yp); f1_score(yt, yp, average='macro', labels=L, zero_division=0);
 *   precision_recall_fscore_support(yt, yp, labels=L, zero_division=0); confusion_matrix(yt, yp, labels=L).
 * 'random' is rs = np.random.RandomState(0); yt = rs.randint(0, 6, 30);
 *   yp = np.where(rs.rand(30) < 0.6, yt, rs.randint(0, 6, 30)).
 */
const cases = {
  basic: {
    yt: [0, 0, 1, 1, 2, 2, 2, 3], yp: [0, 1, 1, 1, 2, 0, 2, 2], k: 4,
    acc: 0.625, macroF1: 0.4916666666666667,
    p: [0.5, 0.6666666666666666, 0.6666666666666666, 0], r: [0.5, 1, 0.6666666666666666, 0],
    f: [0.5, 0.8, 0.6666666666666666, 0], s: [2, 2, 3, 1],
    cm: [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 2, 0], [0, 0, 1, 0]],
  },
  // class 2 is predicted but never true; class 4 is neither, and still counts (as 0) in the mean
  absent: {
    yt: [0, 0, 1, 1, 1, 3, 3], yp: [0, 2, 1, 1, 0, 3, 2], k: 5,
    acc: 0.5714285714285714, macroF1: 0.39333333333333337,
    p: [0.5, 1, 0, 1, 0], r: [0.5, 0.6666666666666666, 0, 0.5, 0],
    f: [0.5, 0.8, 0, 0.6666666666666666, 0], s: [2, 3, 0, 2, 0],
    cm: [[1, 0, 1, 0, 0], [1, 2, 0, 0, 0], [0, 0, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 0]],
  },
  random: {
    yt: [4, 5, 0, 3, 3, 3, 1, 3, 5, 2, 4, 0, 0, 4, 2, 1, 0, 1, 5, 1, 5, 0, 1, 4, 3, 0, 3, 5, 0, 2],
    yp: [4, 4, 0, 4, 4, 3, 1, 4, 5, 2, 4, 4, 0, 4, 2, 1, 0, 1, 1, 1, 1, 3, 1, 5, 0, 0, 3, 4, 2, 2], k: 6,
    acc: 0.6, macroF1: 0.5914733414733414,
    p: [0.8, 0.7142857142857143, 0.75, 0.6666666666666666, 0.3333333333333333, 0.5],
    r: [0.5714285714285714, 1, 1, 0.3333333333333333, 0.75, 0.2],
    f: [0.6666666666666666, 0.8333333333333333, 0.8571428571428571, 0.4444444444444444, 0.46153846153846156, 0.28571428571428575],
    s: [7, 5, 3, 6, 4, 5],
    cm: [[4, 0, 1, 1, 1, 0], [0, 5, 0, 0, 0, 0], [0, 0, 3, 0, 0, 0], [1, 0, 0, 2, 3, 0], [0, 0, 0, 0, 3, 1], [0, 2, 0, 0, 2, 1]],
  },
};

for (const [name, c] of Object.entries(cases)) {
  test(`metrics match sklearn: ${name}`, () => {
    close(accuracy(c.yt, c.yp), c.acc, 'accuracy');
    close(macroF1(Int32Array.from(c.yt), Int32Array.from(c.yp), c.k), c.macroF1, 'macro-F1');
    const cm = confusionMatrix(c.yt, c.yp, c.k);
    assert.deepEqual(cm, c.cm);
    perClass(cm).forEach((s, i) => {
      close(s.precision, c.p[i]!, `precision ${i}`);
      close(s.recall, c.r[i]!, `recall ${i}`);
      close(s.f1, c.f[i]!, `f1 ${i}`);
      assert.equal(s.support, c.s[i]);
    });
  });
}

test('by hand: perfect, all-wrong, and the basic case', () => {
  assert.equal(macroF1([0, 1, 2], [0, 1, 2], 3), 1);
  assert.equal(macroF1([0, 0], [1, 1], 2), 0);
  // basic: F1 per class 2*P*R/(P+R) = 1/2, 4/5, 2/3, 0 -> mean (1/2 + 4/5 + 2/3) / 4 = 59/120
  close(macroF1(cases.basic.yt, cases.basic.yp, 4), 59 / 120, 'hand macro-F1');
  assert.equal(accuracy(cases.basic.yt, cases.basic.yp), 5 / 8);
  assert.equal(accuracy([], []), 0);
  assert.deepEqual(confusionMatrix([0, 1, 1], [1, 1, 0], 2), [[0, 1], [1, 1]]);
});

test('argmaxRows takes the first maximum per row; bad shapes and labels throw', () => {
  assert.deepEqual(Array.from(argmaxRows(Float32Array.from([0.1, 0.9, 0.7, 0.3, 0.2, 0.2]), 2)), [1, 0, 0]);
  assert.deepEqual(Array.from(argmaxRows(Float32Array.from([-3, -1, -2]), 3)), [1]);
  assert.throws(() => argmaxRows(new Float32Array(5), 2), RangeError);
  assert.throws(() => confusionMatrix([0, 2], [0, 1], 2), RangeError);
  assert.throws(() => accuracy([0, 1], [0]), RangeError);
});
