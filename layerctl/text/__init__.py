"""Text to arrays: Keras's Tokenizer and pad_sequences, on a flat layout of sequences.

`sequences` owns `FlatSequences` and `pad_sequences`; `tokenizer` the Keras-compatible
`Tokenizer` and its vocabulary file; `corpus` reading files, folders and stdin in blocks;
`pipeline` the streaming `layerctl pad` (`pad_corpus`); `languages` the bundled word dataset.
"""

from layerctl.text.sequences import FlatSequences, pad_sequences
from layerctl.text.tokenizer import DEFAULT_FILTERS, Tokenizer, text_to_word_sequence

__all__ = [
    "DEFAULT_FILTERS",
    "FlatSequences",
    "Tokenizer",
    "pad_sequences",
    "text_to_word_sequence",
]
