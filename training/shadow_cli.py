"""``python -m training compare`` and ``python -m training promote``: the shadow's commands.

    python -m training promote --shadow VERSION   # score VERSION on live traffic, not served
    python -m training promote --clear-shadow     # stop shadow scoring
    python -m training promote VERSION            # serve VERSION now (no gate; a rollback)
    python -m training compare [--since 7d]       # online accuracy of both, with intervals
    python -m training promote --from-shadow      # serve the shadow if it is not worse

The consumer follows ``<store>/current`` and ``<store>/shadow`` (hot reload), so each
change takes effect within ``model.reload_interval_s``. Exit codes: 0 done (promoted or
not: the JSON says which); 2 bad input (no such version, no shadow, a missing topic);
3 no broker.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from consumer.errors import ExitCode
from consumer.settings import Settings
from training.errors import BadInput, exit_code_of

if TYPE_CHECKING:
    from training.online_eval import Comparison


def _window_options(parser: argparse.ArgumentParser, settings: Settings) -> None:
    t = settings.training
    parser.add_argument(
        "--since",
        default=t.online_window,
        help=f"window of labels to read, e.g. 24h, 7d (default {t.online_window})",
    )
    parser.add_argument(
        "--basis",
        choices=("auto", "audit", "reviewed"),
        default="auto",
        help="tickets to decide on: the audit sample, every reviewed ticket, or auto (audit"
        " when it has --min-pairs, else reviewed)",
    )
    parser.add_argument("--confidence", type=float, default=t.online_confidence)
    parser.add_argument("--min-pairs", type=int, default=t.online_min_pairs)
    parser.add_argument("--shadow-version", help="default: the version scored most in the window")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to read the topics")
    parser.add_argument("--store", type=Path, help="model store (default: settings.model.store)")


def build_compare_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training compare",
        description="The served and the shadow model's accuracy on reviewers' labels over a"
        " window, side by side with confidence intervals, and whether the shadow is better.",
    )
    _window_options(parser, settings)
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return parser


def build_promote_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training promote",
        description="Point models/current or models/shadow at a version.",
    )
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("version", nargs="?", help="serve this version now (no gate)")
    what.add_argument("--shadow", metavar="VERSION", help="install VERSION as the shadow")
    what.add_argument("--clear-shadow", action="store_true", help="remove models/shadow")
    what.add_argument(
        "--from-shadow",
        action="store_true",
        help="serve the shadow when its online accuracy is not worse than the served one's",
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=settings.training.online_margin,
        help="--from-shadow: how much less accurate the shadow may be (default"
        f" {settings.training.online_margin})",
    )
    _window_options(parser, settings)
    return parser


def _version_dir(settings: Settings, store: Path, version: str) -> Path:
    from consumer.model_store import CURRENT, SHADOW, load_model

    if version in (CURRENT, SHADOW) or "/" in version:
        raise BadInput(f"not a version name: {version!r}")
    folder = store / version
    if not folder.is_dir():
        raise BadInput(f"no model version {version!r} in {store}")
    load_model(
        folder, settings.model.base_model
    )  # the consumer would refuse what does not load: refuse it here first
    return folder


def _comparison(settings: Settings, ns: argparse.Namespace) -> Comparison:
    from consumer.kafka import wait_for_broker
    from training.drift import parse_duration
    from training.online_eval import compare, read_window

    window_s = parse_duration(ns.since)
    wait_for_broker(settings.kafka, timeout=15)
    since_ms = int((time.time() - window_s) * 1000)
    window = read_window(settings, since_ms, timeout_s=ns.timeout)
    return compare(
        window,
        confidence=ns.confidence,
        min_pairs=ns.min_pairs,
        basis=ns.basis,
        shadow_version=ns.shadow_version,
    )


def compare_command(settings: Settings, ns: argparse.Namespace) -> int:
    from training.online_eval import render

    comparison = _comparison(settings, ns)
    print(json.dumps(comparison.to_dict(), indent=2) if ns.json else render(comparison))
    return ExitCode.OK


def promote_command(settings: Settings, ns: argparse.Namespace) -> int:
    from consumer.model_store import SHADOW, current_version, promote, remove_link
    from training.online_eval import decide_promotion, evidence

    store: Path = ns.store or settings.model.store
    if ns.clear_shadow:
        removed = remove_link(store, SHADOW)
        print(json.dumps({"shadow": None, "removed": removed}))
        return ExitCode.OK
    if ns.shadow:
        folder = _version_dir(settings, store, ns.shadow)
        promote(store, folder, SHADOW)
        print(json.dumps({"shadow": folder.name, "served": current_version(store)}))
        return ExitCode.OK
    if ns.version:
        folder = _version_dir(settings, store, ns.version)
        promote(store, folder)
        print(json.dumps({"served": folder.name, "promoted": True, "reason": "by hand"}))
        return ExitCode.OK
    shadow = current_version(store, SHADOW)
    if shadow is None:
        raise BadInput(f"no shadow model in {store}: `python -m training promote --shadow V`")
    if ns.shadow_version and ns.shadow_version != shadow:
        raise BadInput(f"--shadow-version {ns.shadow_version} is not the shadow ({shadow})")
    ns.shadow_version = shadow
    comparison = _comparison(settings, ns)
    decision = decide_promotion(comparison, ns.margin)
    folder = (store / SHADOW).resolve()
    (folder / "online_promotion.json").write_text(
        evidence(comparison, decision, ns.margin), encoding="utf-8"
    )
    served_before = current_version(store)
    if decision.promote:
        promote(store, folder)
        remove_link(store, SHADOW)
    print(
        json.dumps(
            {
                "promoted": decision.promote,
                "reason": decision.reason,
                "shadow": shadow,
                "served_before": served_before,
                "served": current_version(store),
                "evidence": str(folder / "online_promotion.json"),
            },
            indent=2,
        )
    )
    return ExitCode.OK


def main(command: str, argv: Sequence[str]) -> int:
    from consumer.logs import configure_logging

    settings = Settings()
    parser = (
        build_compare_parser(settings) if command == "compare" else build_promote_parser(settings)
    )
    try:
        ns = parser.parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code or 0)
    configure_logging(settings.logging.level, settings.logging.format)
    run = compare_command if command == "compare" else promote_command
    return exit_code_of(lambda: run(settings, ns))
