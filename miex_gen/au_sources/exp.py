"""z^exp: AU vectors drawn from expert FACS rules (MIEX_PROTOCOL.md §3.3).

Each expression lists AUs with the probability that they are active; an active AU gets an
intensity from U(0.5, 1.5) on the 0-5 scale (the original's U(0.5, 1.5)/5 on GANimation's 0-1
scale), every other AU is 0, and the onset is all zeros. Class 0 draws its expression uniformly from
sadness, fear, anger, disgust and contempt. Fear can come out all-zero (probability 1/16); miex
redraws such a vector unless ``allow_empty`` (or ``compat``) is set, because a neutral face labelled
"negative" teaches nothing but noise.
"""

from __future__ import annotations

import numpy as np

from ..aus import AU_INDEX, NUM_AUS
from ..errors import DataError

EXP_RULES: dict[str, dict[str, float]] = {
    "happiness": {"AU12": 1.0, "AU25": 0.5, "AU06": 0.5},
    "sadness": {"AU04": 1.0, "AU01": 0.5, "AU15": 0.5},
    "surprise": {"AU01": 1.0, "AU02": 1.0, "AU05": 0.5, "AU25": 0.5, "AU26": 0.5},
    "fear": {"AU05": 0.5, "AU20": 0.5, "AU25": 0.5, "AU26": 0.5},
    "anger": {"AU04": 1.0, "AU07": 0.5, "AU23": 0.5},
    "disgust": {"AU09": 1.0, "AU10": 0.5, "AU17": 1.0},
    "contempt": {"AU14": 1.0},
}
# expressions a class draws from (uniformly)
CLASS_EXPRESSIONS: dict[int, tuple[str, ...]] = {
    0: ("sadness", "fear", "anger", "disgust", "contempt"),
    1: ("happiness",),
    2: ("surprise",),
}
MICRO_INTENSITY = (0.5, 1.5)
MACRO_INTENSITY = (1.5, 4.0)  # the original's macro counterpart, for side experiments

_EXPRESSIONS = tuple(EXP_RULES)
_PROB = np.zeros((len(_EXPRESSIONS), NUM_AUS), dtype=np.float64)
for _i, _name in enumerate(_EXPRESSIONS):
    for _au, _p in EXP_RULES[_name].items():
        _PROB[_i, AU_INDEX[_au]] = _p

MAX_REDRAWS = 1000


def sample_exp(rng: np.random.Generator, labels: np.ndarray, *, allow_empty: bool = False, compat: bool = False,
               intensity: tuple[float, float] = MICRO_INTENSITY) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw one z^exp triplet per label: (onset f4[N,17] zeros, apex f4[N,17], expression names[N]).

    Deterministic for a given generator state: expressions first, then per-AU activation and
    intensity as [N,17] blocks, then redraws of all-zero rows in order.
    """
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() > 2):
        raise DataError("z^exp labels must be 0 (negative), 1 (positive) or 2 (surprise)")
    low, high = float(intensity[0]), float(intensity[1])
    if not 0.0 <= low <= high <= 5.0:
        raise DataError(f"z^exp intensity range {intensity} must satisfy 0 <= low <= high <= 5")
    n = labels.size
    expr = np.empty(n, dtype=np.int64)
    for label, names in CLASS_EXPRESSIONS.items():
        mask = labels == label
        choices = np.array([_EXPRESSIONS.index(x) for x in names])
        expr[mask] = choices[rng.integers(0, len(choices), size=int(mask.sum()))]
    prob = _PROB[expr]

    def draw(rows: np.ndarray) -> np.ndarray:
        active = rng.random((rows.size, NUM_AUS)) < prob[rows]
        values = rng.uniform(low, high, size=(rows.size, NUM_AUS))
        return np.where(active, values, 0.0)

    apex = draw(np.arange(n))
    if not (allow_empty or compat):
        for _ in range(MAX_REDRAWS):
            empty = np.flatnonzero(~apex.any(axis=1))
            if not empty.size:
                break
            apex[empty] = draw(empty)
        else:  # pragma: no cover - needs a rule with all-zero probabilities
            raise DataError("z^exp: could not draw a non-empty AU vector; a rule has no active AU")
    onset = np.zeros((n, NUM_AUS), dtype=np.float32)
    names = np.asarray([_EXPRESSIONS[i] for i in expr], dtype=str)
    return onset, apex.astype(np.float32), names
