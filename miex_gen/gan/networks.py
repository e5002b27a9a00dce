"""The GANimation generator, in both public checkpoint dialects (GANIMATION.md section 3).

One topology, two sets of parameter names and placements, so that both public weight files load
strictly:

* ``replicate`` (donydchen/ganimation_replicate, the weights MiE-X rendered with): trunk
  convolutions *with* bias, InstanceNorm *without* affine parameters; keys ``model.*``,
  ``color_top.0.weight``, ``au_top.0.weight``;
* ``official`` (albertpumarola/GANimation): trunk convolutions without bias, affine
  InstanceNorm; keys ``main.*``, ``img_reg.0.weight``, ``attetion_reg.0.weight`` (sic).

The forward pass returns the colour map ``C`` (tanh) and the attention mask ``A`` (sigmoid);
:func:`compose` makes the frame ``A * image + (1 - A) * C``. AUs enter already divided by 5
(``miex_gen.aus.to_model_scale``), tiled over the image and concatenated after its 3 channels.
Neither norm keeps running statistics, so ``train()`` and ``eval()`` give the same outputs and
each sample is normalised on its own.

The critic (GANIMATION.md section 4) lives next to this file (``miex gan train``).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..aus import NUM_AUS

Dialect = Literal["replicate", "official"]
DIALECTS: tuple[str, ...] = ("replicate", "official")

# attribute (= state-dict prefix) names of the trunk and the two heads, per dialect
_NAMES: dict[str, dict[str, str]] = {
    "replicate": {"trunk": "model", "color": "color_top", "attention": "au_top", "block": "conv_block"},
    "official": {"trunk": "main", "color": "img_reg", "attention": "attetion_reg", "block": "main"},
}


def _check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ValueError(f"unknown GANimation dialect {dialect!r}; use one of {DIALECTS}")
    return dialect


def _norm(channels: int, dialect: str) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(channels, affine=dialect == "official", track_running_stats=False)


class ResidualBlock(nn.Module):
    """``x + [conv3x3 -> IN -> ReLU -> conv3x3 -> IN](x)``, no ReLU after the sum."""

    def __init__(self, channels: int, dialect: Dialect):
        super().__init__()
        bias = dialect == "replicate"
        body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias),
            _norm(channels, dialect),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 3, 1, 1, bias=bias),
            _norm(channels, dialect),
        )
        self._body_name = _NAMES[dialect]["block"]
        self.add_module(self._body_name, body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + getattr(self, self._body_name)(x)


class Generator(nn.Module):
    """GANimation's AU-conditioned generator: ``(image [-1,1], aus/5) -> (colour C, attention A)``.

    ``conv_dim`` (64 in both releases) and ``repeat_num`` (6 residual blocks) change the width
    and depth; ``c_dim`` is the AU count (17). State-dict keys follow the chosen dialect exactly.
    """

    def __init__(self, dialect: Dialect = "official", conv_dim: int = 64, repeat_num: int = 6, c_dim: int = NUM_AUS):
        super().__init__()
        self.dialect = _check_dialect(dialect)
        self.conv_dim, self.repeat_num, self.c_dim = conv_dim, repeat_num, c_dim
        bias = dialect == "replicate"
        names = _NAMES[dialect]

        layers: list[nn.Module] = [
            nn.Conv2d(3 + c_dim, conv_dim, 7, 1, 3, bias=bias), _norm(conv_dim, dialect), nn.ReLU(inplace=True),
        ]
        channels = conv_dim
        for _ in range(2):  # down-sampling
            layers += [nn.Conv2d(channels, channels * 2, 4, 2, 1, bias=bias), _norm(channels * 2, dialect),
                       nn.ReLU(inplace=True)]
            channels *= 2
        layers += [ResidualBlock(channels, dialect) for _ in range(repeat_num)]
        for _ in range(2):  # up-sampling
            layers += [nn.ConvTranspose2d(channels, channels // 2, 4, 2, 1, bias=bias),
                       _norm(channels // 2, dialect), nn.ReLU(inplace=True)]
            channels //= 2
        self.add_module(names["trunk"], nn.Sequential(*layers))
        self.add_module(names["color"], nn.Sequential(nn.Conv2d(channels, 3, 7, 1, 3, bias=False), nn.Tanh()))
        self.add_module(names["attention"], nn.Sequential(nn.Conv2d(channels, 1, 7, 1, 3, bias=False), nn.Sigmoid()))
        self._names = names

    @property
    def trunk(self) -> nn.Sequential:
        return getattr(self, self._names["trunk"])

    @property
    def color_head(self) -> nn.Sequential:
        return getattr(self, self._names["color"])

    @property
    def attention_head(self) -> nn.Sequential:
        return getattr(self, self._names["attention"])

    def forward(self, image: torch.Tensor, aus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``image`` [B, 3, H, W] in [-1, 1], ``aus`` [B, c_dim] on the model scale (/5).

        Returns colour ``C`` [B, 3, H, W] in (-1, 1) and attention ``A`` [B, 1, H, W] in (0, 1).
        """
        cond = aus.to(image.dtype).view(aus.shape[0], aus.shape[1], 1, 1).expand(-1, -1, image.shape[2], image.shape[3])
        features = self.trunk(torch.cat([image, cond], dim=1))
        return self.color_head(features), self.attention_head(features)


def compose(image: torch.Tensor, color: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """GANimation's frame: ``A * image + (1 - A) * C`` (A = 1 keeps the input pixel)."""
    return attention * image + (1.0 - attention) * color


def saturate_mask(attention: torch.Tensor) -> torch.Tensor:
    """The official code's optional mask saturation: ``clamp(0.55 tanh(3 (A - 0.5)) + 0.5, 0, 1)``."""
    return torch.clamp(0.55 * torch.tanh(3.0 * (attention - 0.5)) + 0.5, 0.0, 1.0)


def init_weights(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """GANimation's initialisation, seeded: conv weights N(0, 0.02), biases 0, IN affine (1, 0).

    Shared by the generator and the critic so both draw from one seeded ``torch.Generator``.
    """
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                sub.weight.copy_(torch.randn(sub.weight.shape, generator=generator) * 0.02)
                if sub.bias is not None:
                    sub.bias.zero_()
            elif isinstance(sub, nn.InstanceNorm2d) and sub.affine:
                sub.weight.fill_(1.0)
                sub.bias.zero_()
    return module


def expected_shapes(dialect: Dialect, conv_dim: int = 64, repeat_num: int = 6,
                    c_dim: int = NUM_AUS) -> dict[str, tuple[int, ...]]:
    """Key -> shape of a generator's state dict (built on the meta device: no memory used)."""
    with torch.device("meta"):
        net = Generator(dialect, conv_dim=conv_dim, repeat_num=repeat_num, c_dim=c_dim)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}
