"""`layerctl pad INPUT... -o OUT.npz`: text files or class folders -> padded integer arrays.

Wiring only: options are checked and turned into a `Tokenizer` and `PadOptions`, the library
(`layerctl.text.pipeline.pad_corpus`) does the work, and this module writes the files and prints
the summary on stderr, so stdout stays clean for pipes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import numpy as np

DTYPES = ["int32", "int64", "int16", "int8", "uint8", "uint16", "uint32", "float32", "float64",
          "float16"]
PROGRESS_MIN_BYTES = 16 << 20


@click.command("pad")
@click.argument("inputs", nargs=-1, metavar="[INPUT]...", type=click.Path(path_type=str))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="OUT.npz (x, and y + classes for class folders) or OUT.npy (x only).")
@click.option("--dataset", type=click.Choice(["languages"]),
              help="Pad a bundled dataset instead of INPUT (languages: words of 4 languages).")
@click.option("--ints", is_flag=True,
              help="Lines already hold whitespace-separated integers: no tokenizer.")
@click.option("--maxlen", type=click.IntRange(min=1),
              help="Length of every row. [default: the longest sequence]")
@click.option("--padding", type=click.Choice(["pre", "post"]), default="pre", show_default=True,
              help="Pad before or after each sequence.")
@click.option("--truncating", type=click.Choice(["pre", "post"]), default="pre",
              show_default=True, help="Cut longer sequences at the start or the end.")
@click.option("--value", type=float, default=0.0, show_default=True, help="Padding value.")
@click.option("--dtype", type=click.Choice(DTYPES), default="int32", show_default=True)
@click.option("--num-words", type=click.IntRange(min=1),
              help="Keep only ids below this (the most frequent tokens).")
@click.option("--oov-token", help="Token for unknown or cut words; it takes id 1.")
@click.option("--lower/--no-lower", default=None, help="Lower-case the text. [default: lower]")
@click.option("--level", type=click.Choice(["word", "char"]), default=None,
              help="Tokens are words or characters. [default: word]")
@click.option("--vocab", "vocab_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the vocabulary built here (JSON).")
@click.option("--use-vocab", "vocab_in", type=click.Path(dir_okay=False, path_type=Path),
              help="Apply an existing vocabulary (e.g. at predict time); unknown words -> OOV.")
@click.option("--errors", type=click.Choice(["strict", "replace"]), default="strict",
              show_default=True, help="Invalid UTF-8: stop with file:line, or read as U+FFFD.")
@click.option("--shuffle/--no-shuffle", default=True, show_default=True,
              help="Class folders: files in a seeded random order (as Keras does).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --shuffle.")
@click.option("-q", "--quiet", is_flag=True, help="No summary table.")
def command(inputs, output, dataset, ints, maxlen, padding, truncating, value, dtype, num_words,
            oov_token, lower, level, vocab_out, vocab_in, errors, shuffle, seed, quiet) -> None:
    """Tokenize and pad text into arrays, like Keras's Tokenizer + pad_sequences.

    INPUT is a text file (one sample per line), `-` for stdin, or a folder whose sub-folders
    are class names (every file inside is one sample, labelled by its sub-folder).

    \b
    Example:
      layerctl pad reviews/ --maxlen 200 --num-words 10000 --oov-token '<unk>' \\
          --vocab vocab.json -o train.npz
      layerctl pad new.txt --use-vocab vocab.json --maxlen 200 -o new.npz
      layerctl pad --dataset languages --level char --maxlen 16 -o lang.npz
    """
    from layerctl.text.pipeline import PadOptions, pad_corpus

    _check_usage(inputs, output, dataset, ints, value, dtype, num_words, oov_token, lower, level,
                 vocab_out, vocab_in)
    tokenizer = None if ints else _tokenizer(num_words, oov_token, lower, level, vocab_in)
    options = PadOptions(maxlen, dtype, padding, truncating, value, errors, shuffle, seed)
    fit = vocab_in is None
    started = time.perf_counter()
    with _progress(inputs, dataset, quiet) as progress:
        result = pad_corpus(inputs, tokenizer, options, fit=fit, dataset=dataset,
                            progress=progress)
    if result.classes is not None and output.suffix == ".npy":
        raise click.UsageError("these samples have class labels: write OUT.npz (x, y, classes)")
    _write(output, result, options)
    if vocab_out is not None:
        result.tokenizer.save(vocab_out)
    for name in result.empty_classes:
        click.echo(f"warning: class folder '{name}' has no files (label kept, 0 samples)",
                   err=True)
    if not quiet:
        _stderr_console().print(summary_table(result, options, output, vocab_out,
                                              time.perf_counter() - started))


def _check_usage(inputs, output, dataset, ints, value, dtype, num_words, oov_token, lower, level,
                 vocab_out, vocab_in) -> None:
    if not inputs and dataset is None:
        raise click.UsageError("give INPUT files or folders (or - for stdin), or --dataset NAME")
    if inputs and dataset is not None:
        raise click.UsageError("--dataset replaces INPUT: give one or the other")
    if output.suffix not in (".npz", ".npy"):
        raise click.BadParameter("must end in .npz or .npy", param_hint="'-o' / '--output'")
    from layerctl.atomic import check_destination

    for destination in (output, vocab_out):  # before any work: refused outputs fail at once
        if destination is not None:
            check_destination(destination)
    if vocab_out is not None and vocab_in is not None:
        raise click.UsageError("--vocab writes a new vocabulary, --use-vocab applies one: "
                               "choose one")
    tokenizer_options = {"--num-words": num_words, "--oov-token": oov_token, "--lower": lower,
                         "--level": level, "--vocab": vocab_out, "--use-vocab": vocab_in}
    given = [name for name, setting in tokenizer_options.items() if setting is not None]
    if ints and given:
        raise click.UsageError(f"--ints reads integers, so {', '.join(given)} cannot apply")
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        if not (np.isfinite(value) and value == int(value) and info.min <= value <= info.max):
            raise click.BadParameter(f"{value:g} is not a {dtype} value",
                                     param_hint="'--value'")


def _tokenizer(num_words, oov_token, lower, level, vocab_in):
    from layerctl.text.tokenizer import Tokenizer

    if vocab_in is None:
        return Tokenizer(num_words=num_words, lower=True if lower is None else lower,
                         char_level=level == "char", oov_token=oov_token)
    tokenizer = Tokenizer.load(vocab_in)
    stored = {"--level": "char" if tokenizer.char_level else "word",
              "--lower": tokenizer.lower, "--oov-token": tokenizer.oov_token}
    for name, asked in (("--level", level), ("--lower", lower), ("--oov-token", oov_token)):
        if asked is not None and asked != stored[name]:
            raise click.UsageError(
                f"{name} {asked} differs from the vocabulary's ({stored[name]}) in {vocab_in}; "
                "drop the option to use the vocabulary's setting")
    if num_words is not None:
        tokenizer.num_words = num_words  # applied when looking words up, as in Keras
    return tokenizer


def _write(output: Path, result, options) -> None:
    from layerctl.atomic import atomic_path
    from layerctl.text.record import NPZ_KEY, pipeline_json

    # the .npz remembers how its rows were made, for `train` to keep and `predict --text` to use
    record = {NPZ_KEY: np.array(pipeline_json(result.tokenizer, options, result.x.shape[1],
                                              result.classes))}
    with atomic_path(output) as temporary:
        if output.suffix == ".npy":
            np.save(temporary, result.x)
        elif result.classes is None:
            np.savez(temporary, x=result.x, **record)
        else:
            np.savez(temporary, x=result.x, y=result.y, classes=np.array(result.classes),
                     **record)


def _stderr_console():
    import os

    from rich.console import Console

    return Console(file=sys.stderr, no_color="NO_COLOR" in os.environ or None, highlight=False)


class _progress:
    """A rich progress bar on stderr, only for large inputs and only on a terminal."""

    def __init__(self, inputs, dataset, quiet: bool) -> None:
        from layerctl.text.corpus import input_size

        size = None if dataset or quiet or not sys.stderr.isatty() else input_size(inputs)
        self.total = None if size is None or size < PROGRESS_MIN_BYTES else size
        self.bar = None

    def __enter__(self):
        if self.total is None:
            return None
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.bar = Progress("reading", BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                            TimeRemainingColumn(), console=_stderr_console(), transient=True)
        self.bar.start()
        task = self.bar.add_task("pad", total=self.total)
        return lambda nbytes: self.bar.advance(task, nbytes)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def summary_table(result, options, output: Path, vocab_out: Path | None, seconds: float):
    """The rich table printed after padding: counts, lengths, vocabulary, output."""
    from rich.table import Table

    lengths = result.lengths
    count, tokens = len(lengths), int(lengths.sum())
    width = result.x.shape[1]
    table = Table(title=f"layerctl pad → {output}", show_header=False, title_justify="left",
                  box=None, padding=(0, 1))
    table.add_column(style="bold")
    table.add_column()
    samples = f"{count:,}"
    if result.classes is not None:
        per_class = np.bincount(result.y, minlength=len(result.classes))
        samples += f"  ({len(result.classes)} classes: " + ", ".join(
            f"{name} {n:,}" for name, n in zip(result.classes, per_class, strict=True)) + ")"
    table.add_row("samples", samples)
    table.add_row("tokens", f"{tokens:,}" + _level(result.tokenizer))
    p50, p90, p99 = np.percentile(lengths, [50, 90, 99])
    table.add_row("length", f"min {lengths.min():,}  median {p50:,.0f}  p90 {p90:,.0f}  "
                            f"p99 {p99:,.0f}  max {lengths.max():,}")
    truncated = int(np.count_nonzero(lengths > width))
    table.add_row("maxlen", f"{width:,}" + ("" if options.maxlen else " (the longest)")
                  + f", padding {options.padding}, truncating {options.truncating}")
    table.add_row("truncated", f"{truncated:,} ({100 * truncated / count:.1f}%)")
    empty = int(np.count_nonzero(lengths == 0))
    if empty:
        table.add_row("empty", f"{empty:,} (rows of padding only)")
    if result.tokenizer is not None:
        table.add_row("vocabulary", _vocabulary(result.tokenizer, vocab_out))
        share = 100 * result.out_of_vocabulary / max(tokens, 1)
        table.add_row("out of vocabulary", f"{result.out_of_vocabulary:,} tokens ({share:.1f}%)")
    shapes = f"x {result.x.shape} {result.x.dtype}"
    if result.classes is not None:
        shapes += f", y {result.y.shape} {result.y.dtype}, classes ({len(result.classes)},)"
    table.add_row("output", shapes)
    megabytes = result.bytes_read / 1e6
    table.add_row("read", f"{megabytes:,.1f} MB in {seconds:.2f} s "
                          f"({megabytes / max(seconds, 1e-9):,.1f} MB/s)")
    return table


def _level(tokenizer) -> str:
    if tokenizer is None:
        return " (integers)"
    return " (characters)" if tokenizer.char_level else " (words)"


def _vocabulary(tokenizer, vocab_out: Path | None) -> str:
    size = len(tokenizer.word_index)
    text = f"{size:,} ids (1–{size})"
    if tokenizer.oov_token is not None:
        text += f", OOV {tokenizer.oov_token!r} = 1"
    if tokenizer.num_words:
        text += f", num_words {tokenizer.num_words:,} keeps ids < {tokenizer.num_words:,}"
    if vocab_out is not None:
        text += f"; written to {vocab_out}"
    return text
