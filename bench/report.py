"""BENCHMARKS.md from ``bench-results/results.json``."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _target(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _load(row: dict[str, Any]) -> str:
    """``0.41 → 1.90 (others 3%)``, flagged when the row was taken on a busy machine."""
    if "load_before" not in row:
        return "n/a"
    others = row.get("others_cpu_share")
    text = f"{row['load_before'][0]} → {row['load_after'][0]}"
    if others is not None:
        text += f" (others {100 * others:.0f}%)"
    return text + (" **under load**" if row.get("under_load") else "")


def fast_path_target(machine: dict[str, Any]) -> float:
    """Issue 13: ≥ 3× fp32 on a CPU with AMX, ≥ 2× on one without."""
    return 3.0 if "amx_bf16" in machine.get("cpu_flags", []) else 2.0


def mo_batch(speed: dict[str, Any]) -> int:
    """The batch size of the served path's model-only row."""
    return int(speed["model_only"].get(speed.get("auto_key", ""), {}).get("batch_size", 32))


def _turns_text(turns: dict[str, Any]) -> str:
    """``model_only.interleaved``'s medians with their rounds, one name after another."""
    return "; ".join(
        f"{name} {median} tickets/s (rounds {turns['rates'][name]})"
        for name, median in turns["medians"].items()
    )


def _workers_text(streams: dict[str, Any]) -> list[str]:
    """The inference workers the served path runs with, and the start-up timing behind it."""
    timed = streams.get("speeds")
    how = (
        " (timed at start-up, workers → tickets/s: "
        + ", ".join(f"{n} → {rate}" for n, rate in timed.items())
        + ")"
        if timed
        else f" ({streams['reason']})"
    )
    return [
        "",
        f"Inference workers: **{streams['workers']}**, {streams['threads_per_worker']} torch"
        f" thread(s) each{how}. Rows marked `xN workers` run N batches at once, as served.",
    ]


def speed_section(speed: dict[str, Any], machine: dict[str, Any]) -> list[str]:
    mo = speed["model_only"]
    auto = speed["auto_precision"]
    ratios = speed["ratios"]
    e2e = speed["end_to_end"]
    lat = speed["latency"]
    e2e_how = ", the two in turn" if "end_to_end_interleaved" in speed else ""
    lines = [
        "## Speed",
        "",
        f"Model: `{speed['model_dir']}`; serving precision chosen automatically: **{auto}**"
        + (f" ({speed['auto_choice']['reason']})." if speed.get("auto_choice") else "."),
        *(_workers_text(speed["inference_workers"]) if speed.get("inference_workers") else []),
        "",
        "Load: the 1-minute load average before → after each row, and the share of the CPU"
        " time other processes (the broker included) took during it; **under load** marks a"
        " row taken on a busy machine: its figure is not to be trusted.",
        "",
        "### Model only (tokenizer + model, tickets in stream order)",
        "",
        "| precision @ batch | tickets/s | ms per batch | mean tokens | load |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, row in mo.items():
        lines.append(
            f"| {key} | {row['tickets_per_s']} | {row['ms_per_batch']} | {row['mean_tokens']} |"
            f" {_load(row)} |"
        )
    acc = speed.get("precision_accuracy", {})
    if acc:
        lines += [
            "",
            "BANKING77 11-bucket accuracy by serving precision: "
            + ", ".join(f"{k} {_pct(v)}" for k, v in acc.items())
            + ".",
        ]
    e2e_turns = speed.get("end_to_end_interleaved")
    if e2e_turns:
        lines += [
            "",
            f"Model only and end to end at the served path ({auto}) in turn,"
            f" {e2e_turns['rounds']} rounds each (end to end: a drain of"
            f" {e2e_turns.get('tickets_per_drain', '?')} tickets; medians; the end-to-end"
            " target below uses these): " + _turns_text(e2e_turns) + ".",
        ]
    turns = speed.get("fast_path_interleaved")
    if turns:
        lines += [
            "",
            f"fp32 and the served path ({speed.get('fast_path_served_name', auto)}) in turn at"
            f" batch {mo_batch(speed)},"
            f" {turns['rounds']} rounds each (medians; the target below uses these): "
            + _turns_text(turns)
            + f"; load {_load(turns)}.",
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
    shadow = speed.get("shadow_cost")
    if shadow:
        shares = shadow["shares"]
        lines += [
            "",
            f"Shadow scoring (issue 16), the batch step at batch {shadow['batch_size']}"
            f" ({shadow['served_path']}, a second model of the same size, interleaved rounds,"
            f" medians; load {_load(shadow)}): no shadow {shares['0']['tickets_per_s']}"
            f" tickets/s; 10% of traffic {shares['0.1']['tickets_per_s']}"
            f" ({100 * shares['0.1']['cost_share']:+.1f}% cost); 100% of traffic"
            f" {shares['1']['tickets_per_s']} ({100 * shares['1']['cost_share']:+.1f}% cost).",
        ]
    gflop = speed["flops_per_ticket"] / 1e9
    peak = speed.get("gemm_peak_gflops")
    rates = [r["tickets_per_s"] for k, r in mo.items() if k.startswith("fp32@")]
    share = ""
    if peak and rates:
        best = max(rates)
        share = (
            f" The machine's fp32 peak, measured as the best rate of a 2048² fp32 GEMM with"
            f" the same threads, is {peak:.0f} GFLOP/s; fp32 model-only at its best batch"
            f" ({best} tickets/s) reaches {best * speed['flops_per_ticket'] / 1e9:.0f} GFLOP/s,"
            f" **{100 * best * speed['flops_per_ticket'] / 1e9 / peak:.0f}% of that peak**."
        )
    lines += [
        "",
        f"Arithmetic: {gflop:.3f} GFLOP per ticket at the mean length above"
        " (2 × multiply-adds of the six encoder layers; 1.36 GFLOP at 64 tokens)." + share,
        "",
        "### End to end and the naive peer",
        "",
        "| what | tickets/s | load |",
        "| --- | --- | --- |",
        f"| end to end (raw → consumer → classified/review, commits), batch {e2e['batch_size']} |"
        f" {e2e['tickets_per_s']} | {_load(e2e)} |",
        f"| naive peer (HF pipeline, one message, one produce+flush, one commit at a time) |"
        f" {speed['naive']['tickets_per_s']} | {_load(speed['naive'])} |",
        "",
        f"Latency produce→classified at {lat['offered_per_s']} tickets/s offered (half the"
        f" measured maximum), {lat['received']} tickets: p50 {lat['p50_ms']} ms, p95"
        f" {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms (max {lat['max_ms']} ms); load"
        f" {_load(lat)}.",
        *_warmup_line(lat),
        "",
        "### Targets",
        "",
        *(
            [
                "**Some rows behind these ratios were taken under load (see above): the"
                " ratios are indicative only.**",
                "",
            ]
            if speed.get("ratios_under_load")
            else []
        ),
        "| target | measured | |",
        "| --- | --- | --- |",
        f"| end to end ≥ 0.95 × model only (served path{e2e_how}) |"
        f" {ratios['end_to_end_over_model_only']} ×"
        f" | {_target(ratios['end_to_end_over_model_only'] >= 0.95)} |",
        f"| end to end ≥ 10 × naive peer | {ratios['end_to_end_over_naive']} ×"
        f" | {_target(ratios['end_to_end_over_naive'] >= 10)} |",
    ]
    if ratios.get("auto_over_fp32_model_only") is not None and machine.get("gpu") is None:
        fast, goal = ratios["auto_over_fp32_model_only"], fast_path_target(machine)
        how = " (fp32 and it in turn)" if "fast_path_interleaved" in speed else ""
        lines.append(
            f"| CPU fast path (auto) ≥ {goal:g} × fp32, model only{how} | {fast} × ({auto})"
            f" | {_target(fast >= goal)} |"
        )
    budget = speed.get("max_wait_ms", 50) + 2 * speed["batch_inference_ms"]
    lines.append(
        f"| p99 latency ≤ max_wait_ms + 2 batch inference times ({budget:.0f} ms) |"
        f" {lat['p99_ms']} ms | {_target(lat['p99_ms'] <= budget)} |"
    )
    return lines


def _warmup_line(lat: dict[str, Any]) -> list[str]:
    """The stream's first seconds, produced and awaited before the measured tickets."""
    warm = lat.get("warmup")
    if not warm or not warm.get("received"):
        return []
    return [
        f"Before them, a warm-up of {warm['tickets']} tickets at the same rate (the service's"
        " first fetches of a new topic, cold kernels), not in these figures: p50"
        f" {warm['p50_ms']} ms, p99 {warm['p99_ms']} ms (max {warm['max_ms']} ms)."
    ]


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
