"""Temperature scaling on the validation slice, folded into the head's logit scale.

Label smoothing and early stopping leave a fine-tuned classifier under- or
over-confident. One temperature ``T``, chosen to minimise the validation
negative log-likelihood, fixes most of it without moving any prediction (the
argmax is unchanged). Serving needs nothing new: the served logits are
``scale * head(x)``, so the model is written with ``scale / T``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from training.trainer import FitResult

BOUNDS = (0.05, 20.0)


def nll(log_probs: np.ndarray, y: np.ndarray, temperature: float) -> float:
    scaled = log_probs / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(scaled).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(y)), y]))


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising NLL of ``softmax(log(probs) / T)`` (golden-section on log T)."""
    if len(y) == 0:
        return 1.0
    log_probs = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0))
    lo, hi = np.log(BOUNDS[0]), np.log(BOUNDS[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(log_probs, y, np.exp(a)), nll(log_probs, y, np.exp(b))
    for _ in range(60):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(log_probs, y, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(log_probs, y, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def rescale(probs: np.ndarray, temperature: float) -> np.ndarray:
    log_probs = np.log(np.clip(probs.astype(np.float64), 1e-12, 1.0)) / temperature
    log_probs -= log_probs.max(axis=1, keepdims=True)
    out = np.exp(log_probs)
    return (out / out.sum(axis=1, keepdims=True)).astype(np.float32)


def calibrate(fitted: FitResult, y_val: np.ndarray) -> float:
    """Fit T on the validation slice and fold it into the network's head scale (in place)."""
    temperature = fit_temperature(fitted.validation_probs, y_val)
    head = dataclasses.replace(fitted.head_config, scale=fitted.head_config.scale / temperature)
    fitted.network.head_config = head
    fitted.head_config = head
    fitted.validation_probs = rescale(fitted.validation_probs, temperature)
    return temperature
