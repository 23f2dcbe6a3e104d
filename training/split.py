"""Deterministic train / validation / test split by a hash of the ticket id.

A ticket's split is a function of its id alone (and a fixed salt): it stays in
the same split across retrains, whatever other records arrive, are relabeled or
are deleted. The split is stratified by label in the sense that matters for
stability: every label is split by the same per-id rule, so each label gets
about ``validation_fraction`` / ``test_fraction`` of its tickets, and no
ticket's split depends on any other record (assigning by rank within a label
would move tickets whenever new ones arrive). ``per_label_counts`` reports what
each label actually got.

With a separate test file, the hash range of the test slice joins training;
the validation range is the same in both modes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from consumer.sampling import hash_unit
from training.records import Example

SplitName = Literal["train", "validation", "test"]


def assign_split(
    ticket_id: str,
    *,
    salt: str,
    validation_fraction: float,
    test_fraction: float,
    holdout_test: bool = True,
) -> SplitName:
    unit = hash_unit(ticket_id, salt)
    if unit < validation_fraction:
        return "validation"
    if holdout_test and unit < validation_fraction + test_fraction:
        return "test"
    return "train"


@dataclass(frozen=True)
class Split:
    """The three slices. ``test`` is for the final evaluation only: it is never passed
    to ``training.trainer.fit``, to early stopping or to the threshold choice."""

    train: tuple[Example, ...]
    validation: tuple[Example, ...]
    test: tuple[Example, ...]
    test_source: str  # "split" or "file:<name>"

    def ids(self, name: SplitName) -> set[str]:
        return {e.ticket_id for e in getattr(self, name)}

    def per_label_counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name in ("train", "validation", "test"):
            for label, n in Counter(e.label for e in getattr(self, name)).items():
                out.setdefault(label, {"train": 0, "validation": 0, "test": 0})[name] = n
        return dict(sorted(out.items()))

    def sizes(self) -> dict[str, int]:
        return {
            "train": len(self.train),
            "validation": len(self.validation),
            "test": len(self.test),
        }


def split_examples(
    examples: Iterable[Example],
    *,
    salt: str,
    validation_fraction: float,
    test_fraction: float,
    test_file_examples: Sequence[Example] | None = None,
    test_file_name: str = "",
) -> Split:
    """Split by id hash; with ``test_file_examples`` those are the test slice instead."""
    holdout = test_file_examples is None
    slices: dict[SplitName, list[Example]] = {"train": [], "validation": [], "test": []}
    for example in examples:
        name = assign_split(
            example.ticket_id,
            salt=salt,
            validation_fraction=validation_fraction,
            test_fraction=test_fraction,
            holdout_test=holdout,
        )
        slices[name].append(example)
    test = tuple(slices["test"]) if holdout else tuple(test_file_examples or ())
    return Split(
        train=tuple(slices["train"]),
        validation=tuple(slices["validation"]),
        test=test,
        test_source="split" if holdout else f"file:{test_file_name}",
    )
