"""GANimation's loss terms (GANIMATION.md §7.2) and the weight presets of each implementation.

Each term is a small function so that it can be tested on hand-made inputs; ``LossWeights``
holds the λ values. Three presets:

* ``paper`` (the miex default): the GANimation paper's values, which are the official code's
  defaults (λ_adv 1, λ_cyc 10, λ_A 0.1, λ_TV 1e-5 on the summed absolute TV), with the AU term
  as λ_y · MSE and λ_y = 160 = 4000 / 25, i.e. the official weighting at its batch size of 25
  made independent of the batch size (the official code divides the MSE by B);
* ``official``: albertpumarola's code exactly: λ_y = 4000 on MSE / B, λ_A 0.1, λ_TV 1e-5 (sum);
* ``replicate``: donydchen's code: λ_y = 160 on MSE, attention terms off (λ_A = λ_TV = 0, its
  TV being 2·(mean squared vertical + mean squared horizontal differences)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError

TvKind = Literal["abs_sum", "sq_mean"]


@dataclass(frozen=True)
class LossWeights:
    """The λ of every term; ``au_per_batch`` divides the AU MSE by B as the official code does."""

    adv: float = 1.0
    au: float = 160.0
    gp: float = 10.0
    cyc: float = 10.0
    mask: float = 0.1
    tv: float = 1e-5
    tv_kind: TvKind = "abs_sum"
    au_per_batch: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, LossWeights] = {
    "paper": LossWeights(),
    "official": LossWeights(au=4000.0, au_per_batch=True),
    "replicate": LossWeights(au=160.0, mask=0.0, tv=0.0, tv_kind="sq_mean"),
}
DEFAULT_PRESET = "paper"


def loss_weights(preset: str = DEFAULT_PRESET, **overrides: Any) -> LossWeights:
    """A preset with some λ overridden (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown loss preset {preset!r}", hint=f"use one of {', '.join(PRESETS)}")
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - set(LossWeights.__dataclass_fields__)
    if unknown:
        raise ConfigError(f"unknown loss weight(s) {', '.join(sorted(unknown))}")
    weights = replace(PRESETS[preset], **given)
    if weights.tv_kind not in ("abs_sum", "sq_mean"):
        raise ConfigError(f"unknown TV kind {weights.tv_kind!r}", hint="use abs_sum or sq_mean")
    for name in ("adv", "au", "gp", "cyc", "mask", "tv"):
        if getattr(weights, name) < 0:
            raise ConfigError(f"loss weight {name} must be >= 0, got {getattr(weights, name)}")
    return weights


def wasserstein_critic(real_map: torch.Tensor, fake_map: torch.Tensor) -> torch.Tensor:
    """mean P(fake) - mean P(real): low when the critic scores real above fake."""
    return fake_map.float().mean() - real_map.float().mean()


def wasserstein_generator(fake_map: torch.Tensor) -> torch.Tensor:
    """-mean P(fake): low when the critic scores the fakes as real."""
    return -fake_map.float().mean()


def au_regression(pred: torch.Tensor, target: torch.Tensor, *, per_batch: bool = False) -> torch.Tensor:
    """MSE over batch and AUs (both on the /5 model scale); ``per_batch`` also divides by B."""
    loss = F.mse_loss(pred.float(), target.float())
    return loss / pred.shape[0] if per_batch else loss


def gradient_penalty(patch_map: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     alpha: torch.Tensor) -> torch.Tensor:
    """mean_b (‖∇ₓ Σ P(x̃)‖₂ − 1)² at x̃ = α·real + (1 − α)·fake, the norm over all of a sample's pixels.

    ``alpha`` has one value per sample (B,). The graph is kept (``create_graph``) so that the
    penalty trains the critic: a double backward through ``patch_map``.
    """
    a = alpha.to(real.dtype).view(-1, 1, 1, 1)
    mixed = (a * real.detach() + (1 - a) * fake.detach()).requires_grad_(True)
    out = patch_map(mixed)
    (grad,) = torch.autograd.grad(out.float().sum(), mixed, create_graph=True)
    norm = grad.float().flatten(1).norm(2, dim=1)
    return ((norm - 1) ** 2).mean()


def cycle_l1(reconstructed: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between the cycle reconstruction and the input."""
    return F.l1_loss(reconstructed.float(), real.float())


def mask_magnitude(mask: torch.Tensor) -> torch.Tensor:
    """Mean attention value: small means the generator changes many pixels (A → 1 keeps the input)."""
    return mask.float().mean()


def mask_total_variation(mask: torch.Tensor, kind: TvKind = "abs_sum") -> torch.Tensor:
    """Smoothness of the attention map (B, 1, H, W).

    ``abs_sum``: sum of absolute horizontal and vertical neighbour differences (official code);
    ``sq_mean``: 2·(mean squared vertical + mean squared horizontal difference) (replicate code).
    """
    m = mask.float()
    dh = m[:, :, 1:, :] - m[:, :, :-1, :]
    dw = m[:, :, :, 1:] - m[:, :, :, :-1]
    if kind == "abs_sum":
        return dh.abs().sum() + dw.abs().sum()
    if kind == "sq_mean":
        return 2 * (dh.pow(2).mean() + dw.pow(2).mean())
    raise ConfigError(f"unknown TV kind {kind!r}", hint="use abs_sum or sq_mean")
