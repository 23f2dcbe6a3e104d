"""The model's worker threads: results in submission order, each worker on its own torch
threads, the count chosen by measurement (consumer.inference, consumer.inference_streams)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from consumer import inference_streams
from consumer.batch_step import BatchStep
from consumer.events import RawTicket
from consumer.inference import InferenceFailed, InferenceWorker
from consumer.model_store import load_model
from consumer.predictor import Predictor
from consumer.settings import Settings
from tests.chaos.models import write_untrained_model
from tests.fakes import record


@pytest.fixture(scope="module")
def predictor(tmp_path_factory: pytest.TempPathFactory) -> Predictor:
    folder = write_untrained_model(tmp_path_factory.mktemp("workers") / "v-workers")
    return Predictor(load_model(folder))


def test_a_later_batch_that_finishes_first_waits_for_the_older_one() -> None:
    release = threading.Event()

    def finish(batch: str) -> str:
        if batch == "slow":
            release.wait(10)
        return batch.upper()

    worker: InferenceWorker[str, str] = InferenceWorker(finish, 2, workers=2)
    try:
        worker.submit("slow", 0)
        worker.submit("fast", 0)
        time.sleep(0.2)  # "fast" is done by now, on the other worker
        assert worker.take(0.1) == []  # it must not overtake "slow"
        assert worker.pending == 2 and worker.busy
        threading.Timer(0.3, release.set).start()
        # take_all waits for the oldest even though a younger one finished first
        assert worker.take_all(timeout_s=5) == [(0, "SLOW"), (0, "FAST")]
        assert worker.pending == 0
    finally:
        release.set()
        worker.stop()


def test_each_worker_runs_on_its_own_threads_and_the_service_keeps_its_count() -> None:
    before = torch.get_num_threads()
    seen: list[int] = []

    def finish(batch: int) -> int:
        seen.append(torch.get_num_threads())
        return batch

    worker: InferenceWorker[int, int] = InferenceWorker(finish, 2, workers=2, threads=1)
    try:
        assert worker.thread_counts == [1, 1]
        assert torch.get_num_threads() == before  # the service's thread kept its count
        later: list[int] = []
        thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
        thread.start()
        thread.join()
        assert later == [before]  # and threads started afterwards start with it
        for i in range(4):
            worker.submit(i, 0)
        assert [r for _, r in worker.take_all(5)] == [0, 1, 2, 3]
        assert seen == [1, 1, 1, 1]
    finally:
        worker.stop()


def test_an_error_on_a_worker_is_raised_on_the_service_thread() -> None:
    def finish(batch: int) -> int:
        raise RuntimeError("model exploded")

    worker: InferenceWorker[int, int] = InferenceWorker(finish, 2, workers=2)
    worker.submit(1, 0)
    with pytest.raises(InferenceFailed, match="model exploded"):
        worker.take_all(5)
    worker.stop()


def test_the_depth_is_at_least_one_batch_per_worker() -> None:
    worker: InferenceWorker[int, int] = InferenceWorker(lambda b: b, 1, workers=2)
    try:
        worker.submit(1, 0)
        assert worker.has_room() and not worker.busy
        worker.submit(2, 0)
        assert not worker.has_room()
    finally:
        worker.take_all(5)
        worker.stop()


def test_a_configured_count_is_kept_and_a_gpu_runs_one(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    assert inference_streams.choose(predictor, 2, 32) == inference_streams.Streams(
        2, 2, "configured"
    )
    monkeypatch.setattr(predictor, "device", "cuda")
    assert inference_streams.choose(predictor, None, 32).workers == 1


def test_the_faster_measured_count_is_chosen(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[int]] = []

    def measure(p: Predictor, counts: list[int], batch: int) -> dict[int, float]:
        calls.append(counts)
        return {1: 300.0, 2: 420.0, 4: 390.0}

    monkeypatch.setattr(inference_streams, "measure", measure)
    monkeypatch.setattr(inference_streams, "_CACHE", {})
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    chosen = inference_streams.choose(predictor, None, 32)
    assert (chosen.workers, chosen.threads, chosen.reason) == (2, 2, "measured")
    assert calls == [[1, 2, 4]]
    assert inference_streams.choose(predictor, None, 32) is chosen  # measured once
    assert calls == [[1, 2, 4]]
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert inference_streams.choose(predictor, None, 16).reason == "one_thread"


def test_the_measurement_times_every_count_on_the_served_model(predictor: Predictor) -> None:
    threads = torch.get_num_threads()
    speeds = inference_streams.measure(predictor, [1, 2], 8)
    assert set(speeds) == {1, 2} and all(v > 0 for v in speeds.values())
    assert torch.get_num_threads() == threads


def test_prepare_tokenizes_on_the_service_thread(predictor: Predictor) -> None:
    """The model's threads get token ids: the tokenizer runs where the batch is prepared."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    step = BatchStep(settings, predictor)
    raw = settings.topics.raw
    tickets = [RawTicket(id="a", body="my invoice is wrong"), RawTicket(id="b", body="app crash")]
    records = [record(0, 0, tickets[0].to_bytes(), raw), record(0, 1, b"{bad", raw)]
    records.append(record(0, 2, tickets[1].to_bytes(), raw))
    batch = step.prepare(records)
    texts = [text for _, _, text in batch.tickets]
    assert batch.token_ids == predictor.tokenize(texts) and len(batch.token_ids) == 2
    result = step.finish(batch)
    assert [o.route for o in result.outputs][1] == "dead_letter"


def test_the_bench_runs_the_served_model_on_the_served_workers(predictor: Predictor) -> None:
    from bench import model_only

    texts = [f"my invoice number {i} is wrong" for i in range(20)]
    calls: list[int] = []
    original = predictor.probabilities_from_ids

    def counted(token_ids: list[list[int]]) -> object:
        calls.append(len(token_ids))
        return original(token_ids)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(predictor, "probabilities_from_ids", counted)
        row = model_only.measure(
            predictor, texts, 8, 0.0, streams=inference_streams.Streams(2, 1, "configured")
        )
    assert row["workers"] == 2 and row["tickets"] == 20 and row["batch_ms"] > 0
    assert calls[-3:] == [8, 8, 4]  # one timed pass, every ticket, in batches of 8


def test_a_worker_that_cannot_start_is_an_error_not_a_hang(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from consumer import inference

    def broken(threads: int | None) -> int:
        raise RuntimeError("no threads for you")

    monkeypatch.setattr(inference, "pin_threads", broken)
    raised: list[BaseException] = []

    def start() -> None:
        try:
            InferenceWorker(lambda b: b, 2, workers=2, threads=1)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=start, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "the service thread waited for ever"
    assert len(raised) == 1 and isinstance(raised[0], InferenceFailed)
    assert "no threads for you" in str(raised[0])
