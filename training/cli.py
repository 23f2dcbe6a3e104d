"""``python -m training``: train (default), ``evaluate`` a model folder, ``drift``,
``compare`` (online accuracy of the served and shadow models) or ``promote``.

Exit codes: 0 trained (promoted or not) / evaluated; 2 bad input (no data, too
few examples, unreadable file or label map); 1 anything unexpected.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from consumer.errors import ExitCode


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("file source (CSV or JSONL)")
    group.add_argument("--from-file", type=Path, help="train on this file, not the archive topic")
    group.add_argument("--text-column", default="text", help="ticket body column (text)")
    group.add_argument("--label-column", default="category", help="label column (category)")
    group.add_argument("--subject-column", default=None, help="optional subject column")
    group.add_argument("--id-column", default=None, help="ticket id column (default: id if any)")
    group.add_argument(
        "--label-map", type=Path, help="JSON {bucket: [label, ...]}: train on the buckets"
    )


def build_train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description="Train a ticket classifier from the labeled archive topic (or a file),"
        " evaluate it on a held-out slice and promote it when it beats the current model.",
    )
    _add_data_options(parser)
    parser.add_argument(
        "--test-file", type=Path, help="held-out file to evaluate on instead of the test slice"
    )
    parser.add_argument("--force", action="store_true", help="promote even if not better")
    parser.add_argument(
        "--shadow",
        action="store_true",
        help="install the new version as models/shadow (scored on live traffic, not served)"
        " instead of asking the promotion gate",
    )
    parser.add_argument("--store", type=Path, help="model store (default: settings.model.store)")
    parser.add_argument("--args-file", type=Path, help="TrainingArgs as JSON")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one TrainingArgs field (JSON value or string), e.g. --set epochs=2",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training evaluate",
        description="Score a model folder on a labeled file through the serving path; prints"
        " JSON metrics.",
    )
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    _add_data_options(parser)
    parser.add_argument(
        "--precision",
        choices=("fp32", "int8", "bf16", "bf16-autocast", "onnx-fp32", "onnx-int8"),
        default="fp32",
        help="the CPU serving path to score (see consumer.precision)",
    )
    return parser


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _columns(ns: argparse.Namespace) -> Any:
    from training.files import Columns

    return Columns(
        text=ns.text_column, label=ns.label_column, subject=ns.subject_column, id=ns.id_column
    )


def train_command(ns: argparse.Namespace) -> int:
    from consumer.settings import Settings
    from training.args import TrainingArgs
    from training.errors import BadInput
    from training.pipeline import run_training

    try:
        args = TrainingArgs.from_file(ns.args_file) if ns.args_file else TrainingArgs()
        if ns.overrides:
            args = args.with_overrides(parse_overrides(ns.overrides))
    except (ValidationError, ValueError, OSError) as exc:
        raise BadInput(f"invalid training arguments: {exc}") from exc
    result = run_training(
        Settings(),
        args,
        source=ns.from_file if ns.from_file else "archive",
        force=ns.force,
        columns=_columns(ns),
        label_map=ns.label_map,
        test_file=ns.test_file,
        store=ns.store,
        progress=not ns.no_progress and sys.stderr.isatty(),
        shadow=ns.shadow,
    )
    test, promo = result.metrics["test"], result.metrics["promotion"]
    base = result.metrics.get("baseline", {}).get("test", {})
    summary = {
        "model_dir": str(result.model_dir),
        "promoted": result.promoted,
        "promotion": promo["reason"],
        "shadow": ns.shadow,
        "test_accuracy": round(test["accuracy"], 4),
        "test_macro_f1": round(test["macro_f1"], 4),
        "baseline_test_accuracy": round(base["accuracy"], 4) if base else None,
        "review_share_on_test": round(result.metrics["review_on_test"]["review_share"], 4),
        "int8_safe": result.metrics["int8"]["int8_safe"],
        "report": str(result.model_dir / "report.md"),
    }
    print(json.dumps(summary, indent=2))
    return ExitCode.OK


def evaluate_command(ns: argparse.Namespace) -> int:
    from consumer.model_store import load_model
    from consumer.settings import Settings
    from training.dataset import prepare
    from training.errors import BadInput
    from training.evaluate import make_predictor, score_with_predictor
    from training.files import load_label_map, read_file
    from training.threshold import review_outcome

    if ns.from_file is None:
        raise BadInput("evaluate needs --from-file FILE")
    settings = Settings()
    model = load_model(ns.model, settings.model.base_model)
    label_map = load_label_map(ns.label_map) if ns.label_map else None
    prepared = prepare(
        read_file(ns.from_file, _columns(ns)),
        label_map=label_map,
        max_chars=settings.validation.max_clean_chars,
        allowed_labels=model.labels,
    )
    scored = score_with_predictor(make_predictor(model, ns.precision), prepared.examples)
    metrics = scored.metrics(model.labels)
    metrics["review"] = review_outcome(
        scored.confidence, scored.y_pred, scored.correct, model.thresholds
    )
    metrics["model"] = {"path": str(model.path), "version": model.version}
    metrics["precision"] = ns.precision
    metrics["drops"] = dict(sorted(prepared.drops.items()))
    print(json.dumps(metrics, indent=2))
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "drift":  # its own parser and exit codes: training.drift
        from training.drift import main as drift_main

        return drift_main(argv[1:])
    if argv and argv[0] in ("compare", "promote"):  # the shadow's: training.shadow_cli
        from training.shadow_cli import main as shadow_main

        return shadow_main(argv[0], argv[1:])
    command = "train"
    if argv and argv[0] in ("train", "evaluate"):
        command = argv.pop(0)
    parser = build_evaluate_parser() if command == "evaluate" else build_train_parser()
    try:
        ns = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help is 0, a usage error is 2
        return int(exc.code or 0)

    from consumer.logs import configure_logging, get_logger
    from consumer.model_store import ModelLoadError
    from consumer.settings import get_settings
    from training.errors import BadInput

    try:
        configure_logging(get_settings().logging.level, get_settings().logging.format)
    except ValidationError as exc:
        print(f"error: invalid settings: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    log = get_logger("training.cli")
    try:
        return evaluate_command(ns) if command == "evaluate" else train_command(ns)
    except (BadInput, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        log.exception("training_failed", error_type=type(exc).__name__)
        print(f"error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return ExitCode.FAILED
