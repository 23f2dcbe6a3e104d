"""``make bench``: speed and accuracy side by side, in one process tree and one run.

1. model only: tickets/s through tokenizer + model (fp32, int8, bf16, bf16 autocast on the CPU;
   fp16, bf16, fp32 on a GPU) and the serving path ``auto`` chooses, next to fp32
2. end to end: raw topic → consumer → classified/review with commits, through the real broker;
   produce→classified latency p50/p95/p99 at half the measured maximum
3. naive peer: one message at a time through a HF pipeline, one produce and commit each
4. accuracy: BANKING77 11 buckets and 77 intents, ours vs TF-IDF, with training wall time

Every row records the load average before and after it and the CPU share other
processes took meanwhile (``bench.load``); rows taken on a busy machine are flagged.
Writes ``bench-results/results.json`` and the speed section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from bench import corpus, end_to_end, model_only, naive, novelty_cost, shadow_cost
from bench.load import measured
from consumer import inference_streams
from consumer.inference_streams import Streams
from consumer.logs import configure_logging
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.settings import Settings

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench-results"
ACCURACY_JSON = RESULTS / "banking77.json"


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from consumer.precision import cpu_info

    return {
        "cpu": cpu,
        "cpu_flags": sorted(f for f in cpu_info()[1] if f.startswith(("amx", "avx512_bf16"))),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": version("transformers"),
        "peft": version("peft"),
        "confluent_kafka": version("confluent-kafka"),
    }


def accuracy(quick: bool, model_out: Path) -> dict[str, Any]:
    """Run training's BANKING77 benchmark (it trains both label sets) unless results exist."""
    cmd = [
        sys.executable,
        "-m",
        "training.bench_banking77",
        "--out",
        str(ACCURACY_JSON),
        "--store",
        str(model_out),
        "--update-md",
        str(REPO / "BENCHMARKS.md"),
        "--set",
        "max_train_minutes=6.5",
    ]
    if quick:
        cmd.append("--quick")
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)
    return dict(json.loads(ACCURACY_JSON.read_text()))


def banking11_accuracy(predictor: Predictor, limit: int | None) -> float:
    import csv

    mapping: dict[str, str] = {}
    for bucket, intents in json.loads(
        (corpus.DATASETS / "banking77" / "coarse11.json").read_text()
    ).items():
        mapping.update({intent: bucket for intent in intents})
    with (corpus.DATASETS / "banking77" / "test.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows = rows[:limit] if limit else rows
    preds = predictor.predict([r["text"] for r in rows], top_k=1)
    hits = sum(
        p.category == mapping.get(r["category"], r["category"])
        for p, r in zip(preds, rows, strict=True)
    )
    return hits / len(rows)


def speed(settings: Settings, model_dir: Path, quick: bool) -> dict[str, Any]:
    n = 600 if quick else 3000
    seconds = 3.0 if quick else 10.0
    tickets = corpus.mixed_raw_tickets(n)
    texts = corpus.cleaned_texts(tickets)
    batch = settings.batching.max_batch
    out: dict[str, Any] = {"model_dir": str(model_dir), "model_only": {}, "precision_accuracy": {}}
    is_gpu = torch.cuda.is_available() and settings.model.device != "cpu"
    precisions = ["fp16", "bf16", "fp32"] if is_gpu else ["fp32", "int8", "bf16", "bf16-autocast"]
    from consumer.precision import onnx_available

    # ONNX Runtime's rows come last: after its sessions ran, torch bf16 lost its lead over
    # int8 in the same process (start-up warm-ups, bf16 vs int8 tickets/s: 302/309 and
    # 417/422 after two ONNX sessions, 655/399 and 461/392 in a fresh process), which tipped
    # `auto` to int8 in two bench runs.
    later = ["onnx-fp32", "onnx-int8"] if not is_gpu and onnx_available() else []
    sizes = sorted({16, batch} | ({256, 1024} if is_gpu else set()))
    # The fast path as served: what `auto` picks on this machine, chosen first, in a process
    # that has run nothing else yet, as a consumer does at start-up (its warm-up included).
    auto = Predictor(load_model(model_dir), settings.model)
    out["auto_precision"] = auto.precision
    out["auto_choice"] = auto.choice.to_dict()
    # ...and the inference workers it is served with (timed now, as the service does; the
    # end-to-end rows below reuse this choice).
    streams = inference_streams.choose(auto, settings.batching.inference_workers, batch)
    out["inference_workers"] = streams.to_dict()
    print("inference workers", out["inference_workers"], flush=True)
    workers = f" x{streams.workers} workers" if streams.workers > 1 else ""

    def row(key: str, predictor: Predictor, size: int, served: Streams | None = None) -> None:
        result, load = measured(
            lambda: model_only.measure(predictor, texts, size, seconds, streams=served)
        )
        out["model_only"][key] = {**result, **load}
        print("model only", key, out["model_only"][key], flush=True)

    def precision_rows(precision: str) -> None:
        cfg = settings.model.model_copy(update={"precision": precision})
        predictor = Predictor(load_model(model_dir), cfg)
        for size in sizes:
            row(f"{precision}@{size}", predictor, size)
        out["precision_accuracy"][precision] = round(
            banking11_accuracy(predictor, 600 if quick else None), 4
        )
        print("banking77/11 accuracy", precision, out["precision_accuracy"][precision], flush=True)

    for precision in precisions:
        precision_rows(precision)
    out["novelty_cost"] = novelty_cost.measure(
        model_dir, settings.model, texts[:1000], batch, seconds=seconds / 2, rounds=3
    )
    print("novelty cost", out["novelty_cost"], flush=True)
    if not is_gpu:
        out["shadow_cost"], load = measured(
            lambda: shadow_cost.measure(
                model_dir,
                settings,
                [t.to_bytes() for t in tickets[:1000]],
                seconds=seconds / 2,
                rounds=3,
            )
        )
        out["shadow_cost"].update(load)
        print("shadow cost", out["shadow_cost"], flush=True)
    auto_key = f"auto ({auto.spec}{workers})@{batch}"
    row(auto_key, auto, batch, streams)
    if not is_gpu and (auto.spec != "fp32" or workers):
        fp32_model = settings.model.model_copy(update={"precision": "fp32"})
        fp32_predictor = Predictor(load_model(model_dir), fp32_model)
        if workers:  # fp32 served the same way: what the workers alone are worth
            row(f"fp32{workers}@{batch}", fp32_predictor, batch, streams)
        # The headline ratio, fp32 eager (one batch at a time) and the served path measured
        # in turn (model_only.interleaved).
        served_name = f"{auto.spec}{workers}"
        pair = {"fp32": (fp32_predictor, None), served_name: (auto, streams)}
        out["fast_path_interleaved"], load = measured(
            lambda: model_only.interleaved(
                lambda name: model_only.measure(
                    pair[name][0], texts, batch, seconds / 2, streams=pair[name][1]
                )["tickets_per_s"],
                list(pair),
            )
        )
        out["fast_path_served_name"] = served_name
        out["fast_path_interleaved"].update(load)
        print("fast path interleaved", out["fast_path_interleaved"], flush=True)
    tokens = out["model_only"][auto_key]["mean_tokens"]
    out["flops_per_ticket"] = model_only.flops_per_ticket(auto, tokens)
    if not is_gpu:
        out["gemm_peak_gflops"] = round(model_only.gemm_peak_gflops(), 1)
    out["end_to_end"], load = measured(lambda: end_to_end.throughput(settings, auto, tickets))
    out["end_to_end"].update(load)
    print("end to end", out["end_to_end"], flush=True)
    # End to end ÷ model only, the two taken in turn like the headline ratio (a drain of
    # ``e2e_n`` tickets, then a model-only row, three times): rows minutes apart carry the drift.
    # The whole corpus per drain: a drain ends with its last commit (every 0.2 s), a fixed cost
    # that a drain of 1,000 tickets (1.5 s at 650/s) paid 7% of its time for, one of 300 20%.
    e2e_n = len(tickets)

    def e2e_turn(name: str) -> float:
        if name == "model only":
            return float(
                model_only.measure(auto, texts, batch, seconds / 2, streams=streams)[
                    "tickets_per_s"
                ]
            )
        return float(end_to_end.throughput(settings, auto, tickets[:e2e_n])["tickets_per_s"])

    out["end_to_end_interleaved"], load = measured(
        lambda: model_only.interleaved(e2e_turn, ["model only", "end to end"])
    )
    out["end_to_end_interleaved"].update(load, tickets_per_drain=e2e_n)
    print("end to end interleaved", out["end_to_end_interleaved"], flush=True)
    max_rate = out["end_to_end"]["tickets_per_s"]
    lat_n = int(min(max_rate * 0.5 * (10 if quick else 30), 3000))
    out["latency"], load = measured(
        lambda: end_to_end.latency(settings, auto, tickets[:lat_n], rate=max_rate * 0.5)
    )
    out["latency"].update(load)
    print("latency", out["latency"], flush=True)
    naive_n = 100 if quick else 250
    out["naive"], load = measured(
        lambda: naive.naive_throughput(settings, tickets[:naive_n], len(auto.labels))
    )
    out["naive"].update(load)
    print("naive", out["naive"], flush=True)
    for precision in later:
        precision_rows(precision)
    model_rate = out["model_only"][auto_key]["tickets_per_s"]
    e2e_rate = out["end_to_end"]["tickets_per_s"]
    fp32_key = f"fp32@{batch}"
    fp32 = out["model_only"].get(fp32_key, {}).get("tickets_per_s")
    out["ratios"] = {
        "end_to_end_over_model_only": round(e2e_rate / model_rate, 3),
        "end_to_end_over_naive": round(e2e_rate / out["naive"]["tickets_per_s"], 2),
        "auto_over_fp32_model_only": round(model_rate / fp32, 2) if fp32 else None,
    }
    if "end_to_end_interleaved" in out:  # the ratio taken in turn is the one to judge by
        medians = out["end_to_end_interleaved"]["medians"]
        out["ratios"]["end_to_end_over_model_only_rows"] = out["ratios"][
            "end_to_end_over_model_only"
        ]
        out["ratios"]["end_to_end_over_model_only"] = round(
            medians["end to end"] / medians["model only"], 3
        )
    if "fast_path_interleaved" in out:  # the ratio taken in turn is the one to judge by
        medians = out["fast_path_interleaved"]["medians"]
        out["ratios"]["auto_over_fp32_rows"] = out["ratios"]["auto_over_fp32_model_only"]
        out["ratios"]["auto_over_fp32_model_only"] = round(
            medians[out["fast_path_served_name"]] / medians["fp32"], 2
        )
    rows = [out["model_only"][k] for k in (auto_key, fp32_key) if k in out["model_only"]]
    rows += [out["end_to_end"], out["latency"], out["naive"]]
    out["ratios_under_load"] = any(r.get("under_load") for r in rows)
    out["auto_key"] = auto_key
    # One batch's time with the model (with several workers each batch takes longer than
    # the time between batches).
    out["batch_inference_ms"] = out["model_only"][auto_key]["batch_ms"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run in a few minutes")
    parser.add_argument(
        "--model",
        type=Path,
        help="model folder for the speed part "
        "(default: the BANKING77 11-bucket model this run trains)",
    )
    parser.add_argument(
        "--skip-accuracy",
        action="store_true",
        help="reuse bench-results/banking77.json instead of training",
    )
    parser.add_argument("--gpu", action="store_true", help="run the speed part on CUDA (fp16)")
    argv_list = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv_list)
    configure_logging("WARNING")
    RESULTS.mkdir(exist_ok=True)
    settings = Settings()
    if args.gpu:
        settings = settings.model_copy(
            update={
                "model": settings.model.model_copy(update={"device": "cuda"}),
                "batching": settings.batching.model_copy(update={"max_batch": 512}),
            }
        )
    started = time.perf_counter()
    store = RESULTS / "models"
    results: dict[str, Any] = {
        "command": "make bench" + (f' ARGS="{" ".join(argv_list)}"' if argv_list else ""),
        "quick": args.quick,
        "machine": machine(),
    }
    if args.skip_accuracy:
        results["accuracy"] = (
            json.loads(ACCURACY_JSON.read_text()) if ACCURACY_JSON.exists() else {}
        )
    else:
        results["accuracy"] = accuracy(args.quick, store)
    model_dir = args.model or Path(results["accuracy"]["coarse11"]["model_dir"])
    results["speed"] = speed(settings, model_dir, args.quick)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    from bench.report import write_benchmarks_md

    write_benchmarks_md(results, REPO / "BENCHMARKS.md")
    print(f"wrote {RESULTS / 'results.json'} and BENCHMARKS.md in {results['wall_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
