/**
 * TF-IDF vectors of texts, as scikit-learn's TfidfVectorizer does by default (lower case, tokens of two or
 * more word characters, smoothed idf = ln((1 + n) / (1 + df)) + 1, rows L2-normalised), keeping the
 * `maxFeatures` most frequent terms: the no-transfer baseline that text backbones are ranked against.
 */
export function tfidf(texts: readonly string[], o: { maxFeatures?: number } = {}): { x: Float32Array; d: number; vocabulary: string[] } {
  const tokens = texts.map((t) => t.toLowerCase().match(/\b\w\w+\b/gu) ?? []);
  const total = new Map<string, number>();
  const df = new Map<string, number>();
  for (const toks of tokens) {
    for (const w of toks) total.set(w, (total.get(w) ?? 0) + 1);
    for (const w of new Set(toks)) df.set(w, (df.get(w) ?? 0) + 1);
  }
  const vocabulary = [...total].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, o.maxFeatures ?? 5000).map(([w]) => w).sort();
  const col = new Map(vocabulary.map((w, j) => [w, j]));
  const d = Math.max(1, vocabulary.length);
  const n = texts.length;
  const idf = vocabulary.map((w) => Math.log((1 + n) / (1 + df.get(w)!)) + 1);
  const x = new Float32Array(n * d);
  tokens.forEach((toks, i) => {
    const row = new Float64Array(d);
    for (const w of toks) { const j = col.get(w); if (j !== undefined) row[j]! += 1; }
    let norm = 0;
    for (let j = 0; j < d; j++) { row[j] = row[j]! * (idf[j] ?? 0); norm += row[j]! ** 2; }
    norm = Math.sqrt(norm) || 1;
    for (let j = 0; j < d; j++) x[i * d + j] = row[j]! / norm;
  });
  return { x, d, vocabulary };
}
