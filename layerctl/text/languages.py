"""The bundled "which language is this word?" dataset, and how it was built.

`layerctl/datasets/languages.npz` holds 8,000 real words, 2,000 from each of four Debian word
lists with permissive licences (English, Spanish, Dutch, Polish; sources and licences in
`layerctl/datasets/README.md`). Words are lower-case, alphabetic, 2 to 24 characters, and a word
found in more than one list is left out, so every word has one right answer. The file holds no
pickles: `text` is the words' UTF-8 bytes joined by newlines, `labels` the class of each word
(in the stored, shuffled order), `classes` the class names.

Rebuild it with `python -m layerctl.text.languages [DICT_FOLDER] [OUT.npz]` after
`apt-get install wamerican wspanish wdutch wpolish`.
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np

from layerctl.errors import DataError, did_you_mean

DATASETS_FOLDER = Path(__file__).resolve().parent.parent / "datasets"
DATASETS = {"languages": "languages.npz"}
# class name -> (Debian package, file under /usr/share/dict)
SOURCES = {
    "dutch": ("wdutch", "dutch"),
    "english": ("wamerican", "american-english"),
    "polish": ("wpolish", "polish"),
    "spanish": ("wspanish", "spanish"),
}
WORDS_PER_CLASS = 2000
SEED = 0


def load_dataset(name: str) -> tuple[list[str], np.ndarray, list[str]]:
    """A bundled text dataset: (samples, int32 labels, class names)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}", hint=did_you_mean(name, DATASETS))
    with np.load(DATASETS_FOLDER / DATASETS[name], allow_pickle=False) as data:
        words = data["text"].tobytes().decode("utf-8").split("\n")
        return words, data["labels"].astype(np.int32), [str(c) for c in data["classes"]]


def usable_words(path: Path) -> set[str]:
    """Lower-case alphabetic words of 2-24 characters (NFC), skipping names and abbreviations."""
    text = unicodedata.normalize("NFC", path.read_text(encoding="utf-8"))
    return {w for w in text.split("\n") if w.isalpha() and w.islower() and 2 <= len(w) <= 24}


def build(
    dict_folder: Path, per_class: int = WORDS_PER_CLASS, seed: int = SEED
) -> tuple[list[str], np.ndarray, list[str]]:
    """Sample `per_class` words of each language that occur in no other list, then shuffle."""
    classes = sorted(SOURCES)
    lists = {name: usable_words(dict_folder / SOURCES[name][1]) for name in classes}
    seen_in: dict[str, int] = {}
    for words in lists.values():
        for word in words:
            seen_in[word] = seen_in.get(word, 0) + 1
    rng = np.random.default_rng(seed)
    words, labels = [], []
    for label, name in enumerate(classes):
        unique = sorted(w for w in lists[name] if seen_in[w] == 1)
        words.extend(rng.choice(unique, per_class, replace=False).tolist())
        labels.extend([label] * per_class)
    order = rng.permutation(len(words))
    return [words[i] for i in order], np.array(labels, dtype=np.uint8)[order], classes


def save(path: Path, words: list[str], labels: np.ndarray, classes: list[str]) -> None:
    from layerctl.atomic import atomic_path

    text = np.frombuffer("\n".join(words).encode("utf-8"), dtype=np.uint8)
    with atomic_path(path) as temporary:
        np.savez_compressed(temporary, text=text, labels=labels, classes=np.array(classes))


if __name__ == "__main__":  # pragma: no cover - a maintainer's tool
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/usr/share/dict")
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else DATASETS_FOLDER / DATASETS["languages"]
    save(out, *build(folder))
    print(f"wrote {out} ({out.stat().st_size} bytes)")
