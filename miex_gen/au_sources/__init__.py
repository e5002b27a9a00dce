"""The three MiE-X AU sources, each producing an :class:`AuPool` (docs/AU_SOURCES.md).

* z^MiE (:func:`build_mie_pool`): onset/apex AUs of real micro-expressions;
* z^MaE (:func:`build_mae_pool`): first frame and an early (25-50 %) frame of macro-expressions;
* z^exp (:func:`sample_exp`, :func:`build_exp_pool`): FACS rule table :data:`EXP_RULES`.
"""

from __future__ import annotations

import numpy as np

from .. import __version__
from ..errors import DataError
from ..seeding import numpy_rng
from .clips import au_csv_path, read_clip_table
from .exp import CLASS_EXPRESSIONS, EXP_RULES, MACRO_INTENSITY, MICRO_INTENSITY, sample_exp
from .mae import build_mae_pool, mae_apex_index
from .mie import build_mie_pool
from .pool import FORMAT_NAME, FORMAT_VERSION, KINDS, AuPool


def build_exp_pool(n_per_class: int, seed: int, *, allow_empty: bool = False, compat: bool = False,
                   intensity: tuple[float, float] = MICRO_INTENSITY) -> AuPool:
    """``n_per_class`` z^exp triplets per class, drawn from ``numpy_rng(seed, "exp")`` (to inspect or share;
    the generate planner draws z^exp itself with :func:`sample_exp`)."""
    if n_per_class < 1:
        raise DataError(f"n_per_class must be at least 1, got {n_per_class}")
    if seed is None:
        raise DataError("a z^exp pool needs a seed", hint="pass --seed N")
    labels = np.repeat(np.arange(3, dtype=np.int8), n_per_class)
    onset, apex, names = sample_exp(numpy_rng(seed, "exp"), labels, allow_empty=allow_empty, compat=compat,
                                    intensity=intensity)
    n = labels.size
    attrs = {"source": "exp", "seed": seed, "n_per_class": n_per_class, "allow_empty": allow_empty, "compat": compat,
             "intensity": list(intensity), "rules": EXP_RULES, "miex_version": __version__}
    return AuPool(onset, apex, labels, "exp", ["facs"] * n, [""] * n, names, np.full(n, -1), np.full(n, -1),
                  attrs=attrs, emotion=names)


__all__ = [
    "AuPool", "CLASS_EXPRESSIONS", "EXP_RULES", "FORMAT_NAME", "FORMAT_VERSION", "KINDS", "MACRO_INTENSITY",
    "MICRO_INTENSITY", "au_csv_path", "build_exp_pool", "build_mae_pool", "build_mie_pool", "mae_apex_index",
    "read_clip_table", "sample_exp",
]
