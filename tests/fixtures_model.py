"""Model fixtures: a tiny model trained once per test session, and model stores.

``trained_model_dir`` trains on 300 synthetic tickets for a handful of steps
(the head starts from a logistic regression on the frozen embeddings, so even
a few steps give a usable model) through ``training.pipeline.run_training``,
the same code path as ``make train``. It takes well under a minute on 2 CPU
cores and needs no broker.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from consumer.settings import Settings

SYNTHETIC_SEED = 2024
SYNTHETIC_COUNT = 300
SYNTHETIC_COLUMNS = {"text": "body", "label": "category", "subject": "subject", "id": "ticket_id"}

# A few steps: enough to exercise the loop; the logistic head init does the rest.
FIXTURE_ARGS: dict[str, object] = {
    "max_steps": 12,
    "batch_size": 16,
    "max_length": 64,
    "epochs": 1,
    "per_category_min_support": 10,
}


def write_synthetic_jsonl(
    path: Path, count: int = SYNTHETIC_COUNT, seed: int = SYNTHETIC_SEED
) -> Path:
    """``count`` synthetic labeled tickets as JSONL (columns: SYNTHETIC_COLUMNS)."""
    from producer_tools.synthetic import generate_tickets

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for ticket in generate_tickets(count, seed):
            handle.write(json.dumps(ticket.to_dict()) + "\n")
    return path


def offline_settings(store: Path) -> Settings:
    """Settings that need no broker and write models under ``store``."""
    base = Settings(_env_file=None)  # type: ignore[call-arg]
    return base.model_copy(update={"model": base.model.model_copy(update={"store": store})})


@pytest.fixture(scope="session")
def synthetic_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_jsonl(tmp_path_factory.mktemp("synthetic") / "tickets.jsonl")


@pytest.fixture(scope="session")
def trained_model_dir(synthetic_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder trained on 300 synthetic tickets (read-only: copy it to change it)."""
    from training.args import TrainingArgs
    from training.files import Columns
    from training.pipeline import run_training

    store = tmp_path_factory.mktemp("fixture-models")
    result = run_training(
        offline_settings(store),
        TrainingArgs.model_validate(FIXTURE_ARGS),
        source=synthetic_file,
        columns=Columns(**SYNTHETIC_COLUMNS),
        progress=False,
    )
    return result.model_dir


@pytest.fixture
def model_store_factory(
    trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """``make_store(promote=True) -> store``: a fresh store holding a copy of the fixture model.

    With ``promote`` the copy is ``<store>/current``, as after ``make train``.
    """
    from consumer.model_store import promote as promote_model

    def make_store(promote: bool = True) -> Path:
        store = tmp_path_factory.mktemp("models")
        folder = store / trained_model_dir.name
        shutil.copytree(trained_model_dir, folder)
        if promote:
            promote_model(store, folder)
        return store

    return make_store
