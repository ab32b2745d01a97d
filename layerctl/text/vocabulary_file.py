"""The vocabulary file's schema, validated as strictly as a spec.

`layerctl pad --vocab` writes it and `--use-vocab` reads it back; a file edited by hand or by an
attacker must not turn into a different tokenizer silently (an index of 2**31 + 5 wrapping to a
negative id, `"char_level": "no"` read as true). Types are strict (no coercion), unknown keys are
errors, indices are unique ints in [1, 2**31).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

INDEX_LIMIT = 2**31  # ids are stored as int32 at most

Index = Annotated[int, Field(ge=1, lt=INDEX_LIMIT)]
Count = Annotated[int, Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class VocabularyConfig(_Strict):
    num_words: Annotated[int, Field(ge=1)] | None = None
    filters: str
    lower: bool
    split: Annotated[str, Field(min_length=1)]
    char_level: bool
    oov_token: Annotated[str, Field(min_length=1)] | None = None


class VocabularyFile(_Strict):
    format: Literal["layerctl.vocabulary"]
    version: Literal[1]
    config: VocabularyConfig
    document_count: Count = 0
    word_counts: dict[str, Count] = Field(default_factory=dict)
    word_index: dict[str, Index]

    @model_validator(mode="after")
    def _unique_indices(self) -> VocabularyFile:
        if len(set(self.word_index.values())) != len(self.word_index):
            seen: dict[int, str] = {}
            for word, index in self.word_index.items():
                if index in seen:
                    raise ValueError(f"index {index} is given to both {seen[index]!r} and "
                                     f"{word!r}")
                seen[index] = word
        return self


def validate_vocabulary(data: object) -> VocabularyFile:
    """The validated file, or ValueError naming the first problem as `where: message`."""
    try:
        return VocabularyFile.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        more = len(error.errors()) - 1
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: {message}"
                         + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")
                         ) from None
