"""Score every serving candidate on the validation slice, through the serving ``Predictor``.

For each candidate the training machine runs natively (``consumer.precision``:
fp32, bf16, bf16 autocast, dynamic int8 on the CPU; fp32, fp16, bf16 on a GPU
when training has one) this loads nothing new: it prepares a copy of the loaded
model folder's network the way serving would, scores validation with it, and
measures its throughput in the same interleaved warm-up the consumer runs at
start-up. The result is the manifest's ``serving_candidates`` record.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from consumer import precision as serving_paths
from consumer.logs import get_logger
from consumer.model_store import LoadedModel
from consumer.predictor import Predictor, warm_up_speeds
from consumer.settings import ModelSettings
from training.evaluate import Scored, score_with_predictor
from training.records import Example

log = get_logger("training.candidates")

# The name ``TICKETSORT_MODEL__PRECISION`` takes for each spec (its inverse).
FORCE_NAME = {
    spec: name for device in serving_paths.FORCED.values() for name, spec in device.items()
}


@dataclass
class Evaluated:
    record: serving_paths.Record
    scored: dict[str, Scored]
    predictors: dict[str, Predictor]

    def baseline(self, device: str) -> str:
        return "fp32-cuda" if device == "cuda" else "fp32"


def candidate_specs(training_device: str, *, onnx: bool = False) -> list[serving_paths.Spec]:
    """What this machine can score: its CPU's candidates (ONNX Runtime's only with ``onnx``:
    each costs an export), and its GPU's when training on one."""
    specs = [
        s
        for s in serving_paths.specs_for(serving_paths.detect_hardware("cpu"))
        if onnx or not s.name.startswith("onnx-")
    ]
    if training_device == "cuda" and torch.cuda.is_available():
        specs += serving_paths.specs_for(serving_paths.detect_hardware("cuda"))
    return specs


def predictor_for(model: LoadedModel, spec: str, max_length: int) -> Predictor:
    """A serving Predictor forced to ``spec``, on its own copy of the network (except fp32)."""
    own = (
        model
        if spec == "fp32"
        else dataclasses.replace(model, network=copy.deepcopy(model.network))
    )
    settings = ModelSettings.model_validate(
        {
            "device": serving_paths.SPECS[spec].device,
            "precision": FORCE_NAME[spec],
            "max_length": max_length,
        }
    )
    return Predictor(own, settings)


def evaluate_candidates(
    model: LoadedModel,
    validation: Sequence[Example],
    *,
    training_device: str,
    max_length: int = 512,
    specs: Sequence[serving_paths.Spec] | None = None,
    onnx: bool = False,
) -> Evaluated:
    specs = list(specs) if specs is not None else candidate_specs(training_device, onnx=onnx)
    predictors = {s.name: predictor_for(model, s.name, max_length) for s in specs}
    scored = {name: score_with_predictor(p, validation) for name, p in predictors.items()}
    texts = [e.text for e in validation]
    lengths = [len(ids) for ids in next(iter(predictors.values())).tokenize(texts)]
    mean_tokens = float(np.mean(lengths)) if lengths else 32.0
    long_tokens = float(np.percentile(lengths, 90)) if lengths else None
    speeds: dict[str, float] = {}
    measured_on: dict[str, str] = {}
    for device in sorted({s.device for s in specs}):
        here = {n: p for n, p in predictors.items() if p.device == device}
        any_one = next(iter(here.values()))
        speeds.update(
            warm_up_speeds(
                {n: (p.network, p.spec) for n, p in here.items()},
                device=device,
                batch=any_one.chunk_size,
                lengths=serving_paths.warm_up_lengths(mean_tokens, long_tokens, max_length),
                vocab=any_one.vocab_size,
            )
        )
        measured_on[device] = any_one.hardware.signature()
    candidates = []
    for spec in specs:
        base = "fp32-cuda" if spec.device == "cuda" else "fp32"
        accuracy = float(scored[spec.name].correct.mean()) if validation else 0.0
        base_accuracy = float(scored[base].correct.mean()) if validation else 0.0
        candidates.append(
            serving_paths.Candidate(
                name=spec.name,
                accuracy=round(accuracy, 6),
                drop_points=round(100 * (base_accuracy - accuracy), 4),
                tickets_per_s=speeds.get(spec.name),
            )
        )
    record = serving_paths.Record(
        candidates=tuple(candidates),
        measured_on=measured_on,
        mean_tokens=round(mean_tokens, 2),
        long_tokens=round(long_tokens, 2) if long_tokens is not None else None,
        extra={"slice": "validation", "n": len(validation)},
    )
    log.info(
        "serving_candidates_scored",
        **{
            c.name: {"drop_points": c.drop_points, "tickets_per_s": c.tickets_per_s}
            for c in candidates
        },
    )
    return Evaluated(record, scored, predictors)
