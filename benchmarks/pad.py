"""Benchmark `pad_sequences` against Keras, and `layerctl pad` end to end on a 100 MB corpus.

(a) 200,000 integer sequences of random length 1-400, maxlen 100: layerctl's pad_sequences
    from the flat form and from Python lists, against `keras.utils.pad_sequences` on the same
    lists in the same run (targets: >= 5x faster from flat, no slower from lists). Skipped
    when Keras is not installed (the `oracle` extra).
(b) an English-like corpus (words of the bundled dataset's English class, inflected, with Zipf
    frequencies, punctuation and a little non-ASCII) written to a temporary folder, padded by
    the real `layerctl pad` in a subprocess: MB/s end to end and the child's peak RSS
    (target: >= 15 MB/s at word level).

    python benchmarks/pad.py [--mb 100] [--skip-keras] [--skip-corpus]
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from layerctl.text.languages import load_dataset
from layerctl.text.sequences import FlatSequences, pad_sequences

SUFFIXES = ["", "", "", "s", "ed", "ing", "ly", "er", "ness", "ers", "ment", "able"]
ACCENTED = ["café", "naïve", "déjà", "résumé", "façade", "fiancée", "über", "jalapeño"]


def best_of(repeats: int, function) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_pad_sequences(count: int = 200_000, maxlen: int = 100) -> None:
    try:
        os.environ.setdefault("KERAS_BACKEND", "torch")
        from keras.utils import pad_sequences as keras_pad_sequences
    except ImportError as error:
        print(f"(a) skipped: Keras is not importable ({error}); pip install -e '.[oracle]'")
        return
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 401, count)
    flat = FlatSequences(rng.integers(1, 20_000, int(lengths.sum()), dtype=np.int32), lengths)
    gc.disable()  # building 200,000 lists would otherwise trigger long collections
    lists = [part.tolist() for part in np.split(flat.values, flat.offsets[1:-1])]
    gc.enable()
    ours_flat, from_flat = best_of(5, lambda: pad_sequences(flat, maxlen=maxlen))
    ours_lists, from_lists = best_of(3, lambda: pad_sequences(lists, maxlen=maxlen))
    keras_time, expected = best_of(3, lambda: keras_pad_sequences(lists, maxlen=maxlen))
    assert np.array_equal(from_flat, expected) and np.array_equal(from_lists, expected)
    print(f"(a) pad_sequences, {count:,} int sequences of length 1-400, maxlen {maxlen}")
    print(f"    keras.utils.pad_sequences (lists)  {keras_time * 1000:8.1f} ms")
    print(f"    layerctl from FlatSequences        {ours_flat * 1000:8.1f} ms  "
          f"{keras_time / ours_flat:5.1f}x faster (target >= 5x)")
    print(f"    layerctl from Python lists         {ours_lists * 1000:8.1f} ms  "
          f"{keras_time / ours_lists:5.1f}x faster (target >= 1x)")


def vocabulary(size: int, rng: np.random.Generator) -> np.ndarray:
    """`size` English-like words: real English words with common suffixes."""
    words, labels, classes = load_dataset("languages")
    english = [w for w, label in zip(words, labels, strict=True) if classes[label] == "english"]
    made = {w + s for w in english for s in SUFFIXES} | set(ACCENTED)
    made = sorted(made)
    rng.shuffle(made)
    # Short function words first: they take the top Zipf ranks, as in real text.
    common = ["the", "of", "and", "to", "a", "in", "is", "it", "that", "was", "for", "on",
              "with", "he", "as", "you", "i", "at", "be", "this", "have", "from", "or", "by"]
    return np.array(common + [w for w in made if w not in common][: size - len(common)])


def write_corpus(path: Path, megabytes: float, seed: int = 0) -> int:
    """Lines of 1-3 sentences of Zipf-distributed words, with punctuation; returns bytes."""
    rng = np.random.default_rng(seed)
    words = vocabulary(20_000, rng)
    ranks = np.arange(1, len(words) + 1)
    probability = 1.0 / ranks**1.07
    probability /= probability.sum()
    target = int(megabytes * 1e6)
    written = 0
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        while written < target:
            lengths = rng.integers(4, 30, 20_000)
            tokens = words[rng.choice(len(words), int(lengths.sum()), p=probability)]
            commas = rng.random(len(tokens)) < 0.06
            tokens = np.where(commas, np.char.add(tokens, ","), tokens)
            ends = rng.choice([". ", "? ", "! ", ". ", ". ", ".\n", ".\n", "?\n"], len(lengths))
            sentences = [" ".join(part).capitalize() for part in
                         np.split(tokens, np.cumsum(lengths)[:-1])]
            text = "".join(s + e for s, e in zip(sentences, ends, strict=True))
            out.write(text)
            written += len(text.encode("utf-8"))
        out.write("\n")
    return written + 1


def bench_layerctl_pad(megabytes: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        corpus = Path(folder) / "corpus.txt"
        size = write_corpus(corpus, megabytes)
        print(f"(b) layerctl pad on {size / 1e6:.0f} MB of English-like text "
              f"({sum(1 for _ in open(corpus, 'rb')):,} lines)")
        runs = {
            "word level, maxlen 100": ["--maxlen", "100"],
            "+ num_words 20000, oov_token": ["--maxlen", "100", "--num-words", "20000",
                                             "--oov-token", "<unk>"],
            "+ num_words 20000, no OOV (ids spooled)": ["--maxlen", "100", "--num-words",
                                                        "20000"],
        }
        for name, options in runs.items():
            seconds, peak = run_pad([str(corpus), "-o", str(Path(folder) / "x.npz"), "-q",
                                     "--vocab", str(Path(folder) / "vocab.json"), *options])
            print(f"    {name:44s} {seconds:6.2f} s  {size / 1e6 / seconds:6.1f} MB/s  "
                  f"peak RSS {peak / 1e6:6.0f} MB")
        naive = naive_pipeline(corpus, maxlen=100, megabytes=20)
        print(f"    naive pure-Python pipeline (first 20 MB, in process)      "
              f"{naive:6.1f} MB/s")
        print("    target: >= 15 MB/s end to end")


def naive_pipeline(path: Path, maxlen: int, megabytes: float) -> float:
    """The straightforward way (Keras 2 Tokenizer style, a loop per line and per sequence),
    as the reference measured in the same run: MB/s."""
    from collections import Counter

    filters = str.maketrans(dict.fromkeys('!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', " "))
    start = time.perf_counter()
    with open(path, encoding="utf-8") as handle:
        text = handle.read(int(megabytes * 1e6))
    counts, sequences = Counter(), []
    for line in text.split("\n"):
        words = [w for w in line.lower().translate(filters).split(" ") if w]
        counts.update(words)
        sequences.append(words)
    index = {w: i + 1 for i, (w, _) in enumerate(counts.most_common())}
    padded = np.zeros((len(sequences), maxlen), dtype=np.int32)
    for row, words in enumerate(sequences):
        ids = [index[w] for w in words][-maxlen:]
        if ids:
            padded[row, -len(ids):] = ids
    return len(text.encode("utf-8")) / 1e6 / (time.perf_counter() - start)


PEAK_REPORTER = """
import atexit, os, sys
def report_peak():
    # VmHWM: this process's peak resident memory since exec (ru_maxrss would include the
    # parent's memory that the fork copied, which Linux carries across exec).
    with open("/proc/self/status") as status, open(os.environ["PAD_PEAK_FILE"], "w") as out:
        out.write(next(l for l in status if l.startswith("VmHWM")).split()[1])
atexit.register(report_peak)
from layerctl.cli import main
sys.argv[0] = "layerctl"
main()
"""


def run_pad(arguments: list[str]) -> tuple[float, int]:
    """Wall time and peak resident memory (bytes) of one `layerctl pad` process."""
    with tempfile.NamedTemporaryFile("r", suffix=".peak") as peak:
        environment = dict(os.environ, PAD_PEAK_FILE=peak.name)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", PEAK_REPORTER, "pad", *arguments], check=True,
                       env=environment)
        seconds = time.perf_counter() - start
        return seconds, int(peak.read() or 0) * 1024  # kB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="corpus size for (b)")
    parser.add_argument("--skip-keras", action="store_true", help="skip (a)")
    parser.add_argument("--skip-corpus", action="store_true", help="skip (b)")
    args = parser.parse_args()
    if not args.skip_keras:
        bench_pad_sequences()
    if not args.skip_corpus:
        bench_layerctl_pad(args.mb)


if __name__ == "__main__":
    main()
