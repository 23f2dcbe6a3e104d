"""BENCHMARKS.md from ``bench-results/results.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _target(ok: bool) -> str:
    return "met" if ok else "**not met**"


def speed_section(speed: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    mo = speed["model_only"]
    auto = speed["auto_precision"]
    ratios = speed["ratios"]
    e2e = speed["end_to_end"]
    lat = speed["latency"]
    lines = [
        "## Speed",
        "",
        f"Model: `{speed['model_dir']}`; serving precision chosen automatically: **{auto}**.",
        "",
        "### Model only (tokenizer + model, tickets in stream order)",
        "",
        "| precision @ batch | tickets/s | ms per batch | mean tokens |",
        "| --- | --- | --- | --- |",
    ]
    for key, row in mo.items():
        lines.append(
            f"| {key} | {row['tickets_per_s']} | {row['ms_per_batch']} | {row['mean_tokens']} |"
        )
    acc = speed.get("precision_accuracy", {})
    if acc:
        lines += [
            "",
            "BANKING77 11-bucket accuracy by serving precision: "
            + ", ".join(f"{k} {_pct(v)}" for k, v in acc.items())
            + ".",
        ]
    cost = speed.get("novelty_cost")
    if cost:
        lines += [
            "",
            f"Novelty score, model only at batch {cost['batch_size']} ({cost['precision']},"
            f" interleaved rounds, medians; load average {cost['load_average']}): without"
            f" {cost['without_tickets_per_s']} tickets/s; "
            + "; ".join(
                f"with {name} {row['tickets_per_s']} ({100 * row['cost_share']:+.1f}% cost)"
                for name, row in cost.items()
                if isinstance(row, dict) and "cost_share" in row
            )
            + " (budget: 5%).",
        ]
    gflop = speed["flops_per_ticket"] / 1e9
    lines += [
        "",
        f"Arithmetic: {gflop:.3f} GFLOP per ticket at the mean length above"
        " (2 × multiply-adds of the six encoder layers; 1.36 GFLOP at 64 tokens).",
        "",
        "### End to end and the naive peer",
        "",
        "| what | tickets/s |",
        "| --- | --- |",
        f"| end to end (raw → consumer → classified/review, commits), batch {e2e['batch_size']} |"
        f" {e2e['tickets_per_s']} |",
        f"| naive peer (HF pipeline, one message, one produce+flush, one commit at a time) |"
        f" {speed['naive']['tickets_per_s']} |",
        "",
        f"Latency produce→classified at {lat['offered_per_s']} tickets/s offered (half the"
        f" measured maximum), {lat['received']} tickets: p50 {lat['p50_ms']} ms, p95"
        f" {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms (max {lat['max_ms']} ms).",
        "",
        "### Targets",
        "",
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| end to end ≥ 0.90 × model only | {ratios['end_to_end_over_model_only']} ×"
        f" | {_target(ratios['end_to_end_over_model_only'] >= 0.9)} |",
        f"| end to end ≥ 5 × naive peer | {ratios['end_to_end_over_naive']} ×"
        f" | {_target(ratios['end_to_end_over_naive'] >= 5)} |",
    ]
    if ratios.get("auto_over_fp32_model_only") is not None and machine.get("gpu") is None:
        fast = ratios["auto_over_fp32_model_only"]
        lines.append(f"| CPU fast path ≥ 2 × fp32 | {fast} × ({auto}) | {_target(fast >= 2)} |")
    budget = speed.get("max_wait_ms", 50) + 2 * speed["batch_inference_ms"]
    lines.append(
        f"| p99 latency ≤ max_wait_ms + 2 batch inference times ({budget:.0f} ms) |"
        f" {lat['p99_ms']} ms | {_target(lat['p99_ms'] <= budget)} |"
    )
    return lines


SPEED_START = "<!-- bench:speed:start -->"
SPEED_END = "<!-- bench:speed:end -->"


def write_benchmarks_md(results: dict[str, Any], path: Path) -> None:
    """Replace the speed section of BENCHMARKS.md; training writes the accuracy section."""
    import re

    machine = results["machine"]
    lines = [
        SPEED_START,
        f"Produced by `{results['command']}` in {results['wall_s'] / 60:.1f} minutes"
        + (
            " (**quick mode: small samples, figures are indicative only**)"
            if results["quick"]
            else ""
        )
        + ".",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, torch threads"
        f" {machine['torch_threads']}, GPU: {machine['gpu'] or 'none'}. Python"
        f" {machine['python']}, torch {machine['torch']}, transformers {machine['transformers']},"
        f" peft {machine['peft']}, confluent-kafka {machine['confluent_kafka']}.",
        "",
    ]
    lines += speed_section(results["speed"], machine)
    lines.append(SPEED_END)
    section = "\n".join(lines)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(re.escape(SPEED_START) + ".*?" + re.escape(SPEED_END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text, encoding="utf-8")
