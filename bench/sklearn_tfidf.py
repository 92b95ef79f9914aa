"""Baseline for text classification: TF-IDF (word 1-2 grams) + logistic regression, on text,label CSVs."""
import csv, sys, time
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

csv.field_size_limit(10**9)


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [r["text"] for r in rows], [r["label"] for r in rows]


Xtr, ytr = read(sys.argv[1])
Xte, yte = read(sys.argv[2])
clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True), LogisticRegression(C=10.0, max_iter=2000))
t = time.perf_counter()
clf.fit(Xtr, ytr)
fit = time.perf_counter() - t
t = time.perf_counter()
acc = clf.score(Xte, yte)
pred = time.perf_counter() - t
print(f"sklearn tfidf+logreg: accuracy {acc:.4f}, fit {fit:.2f} s, predict {pred:.2f} s, train {len(ytr)}, test {len(yte)}")
