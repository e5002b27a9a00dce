"""The GANimation critic: a PatchGAN real/fake map plus an AU regression head.

Both public implementations share one topology (GANIMATION.md §4): ``depth`` stride-2 4×4
convolutions with LeakyReLU(0.01) and no normalisation, doubling the width from ``conv_dim``,
then two bias-free heads on the last feature map. Only the state-dict key names differ
between the dialects, so one class builds either and the weights convert by renaming keys.

The depth is ``log2(image_size) - 1`` (6 at 128², as in both implementations), so the last
feature map is always 2×2: the patch head (3×3, padding 1) gives a 2×2 real/fake map and the
AU head (kernel 2) a 1×1×17 regression. Both outputs are flattened explicitly to ``(B, 4)``
and ``(B, 17)``: the originals' ``.squeeze()`` dropped the batch axis when ``B == 1``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..aus import NUM_AUS
from ..errors import CheckpointError, ConfigError
from .networks import DIALECTS
from .weights import check_state_dict, detect_dialect, key_report


@dataclass(frozen=True)
class CriticKeys:
    """Attribute (= state-dict key prefix) names of one dialect's critic."""

    trunk: str
    patch: str
    aus: str


CRITIC_KEYS: dict[str, CriticKeys] = {
    "replicate": CriticKeys(trunk="model", patch="dis_top", aus="aus_top"),
    "official": CriticKeys(trunk="main", patch="conv1", aus="conv2"),
}


def check_dialect(dialect: str) -> str:
    if dialect not in DIALECTS:
        raise ConfigError(f"unknown GANimation dialect {dialect!r}", hint=f"use one of {', '.join(DIALECTS)}")
    return dialect


def critic_depth(image_size: int) -> int:
    """Number of stride-2 layers for ``image_size`` (a power of two, at least 8): log2(size) - 1."""
    if image_size < 8 or image_size & (image_size - 1):
        raise ConfigError(
            f"image size {image_size} is not supported by the critic",
            hint="use a power of two of at least 8 (128 as GANimation, 32 or 64 for quick runs)",
        )
    return int(math.log2(image_size)) - 1


class Critic(nn.Module):
    """WGAN critic ``D(x) -> (patch map (B, 4), AU estimate (B, 17))`` on images in [-1, 1]."""

    def __init__(self, dialect: str = "replicate", *, image_size: int = 128, conv_dim: int = 64,
                 num_aus: int = NUM_AUS) -> None:
        super().__init__()
        self.dialect = check_dialect(dialect)
        self.image_size = int(image_size)
        self.conv_dim = int(conv_dim)
        self.num_aus = int(num_aus)
        if self.conv_dim < 1:
            raise ConfigError(f"critic conv_dim must be positive, got {conv_dim}")
        self.depth = critic_depth(self.image_size)
        self._keys = CRITIC_KEYS[self.dialect]

        layers: list[nn.Module] = []
        channels_in, channels = 3, self.conv_dim
        for _ in range(self.depth):
            layers += [nn.Conv2d(channels_in, channels, 4, stride=2, padding=1, bias=True), nn.LeakyReLU(0.01)]
            channels_in, channels = channels, channels * 2
        final_size = self.image_size // 2**self.depth  # always 2
        self.add_module(self._keys.trunk, nn.Sequential(*layers))
        self.add_module(self._keys.patch, nn.Conv2d(channels_in, 1, 3, stride=1, padding=1, bias=False))
        self.add_module(self._keys.aus, nn.Conv2d(channels_in, self.num_aus, final_size, stride=1, bias=False))

    @property
    def trunk(self) -> nn.Sequential:
        return getattr(self, self._keys.trunk)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or x.shape[-2:] != (self.image_size, self.image_size):
            raise ValueError(f"critic built for (B, 3, {self.image_size}, {self.image_size}) images, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        h = self.trunk(x)
        patch = getattr(self, self._keys.patch)(h).flatten(1)
        aus = getattr(self, self._keys.aus)(h).flatten(1)
        return patch, aus

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        """Only the real/fake map (B, 4): what the gradient penalty differentiates."""
        self._check_input(x)
        return getattr(self, self._keys.patch)(self.trunk(x)).flatten(1)


def critic_dialect_of(keys: list[str] | Mapping[str, object], *, where: str = "critic weights") -> str:
    """Which dialect a critic state dict is in, from its key names (a generator file is refused)."""
    dialect, role = detect_dialect(list(keys), where=where)
    if role != "critic":
        raise CheckpointError(f"{where} holds GANimation generator weights, not the critic",
                              hint="pass the <epoch>_net_dis.pth / net_epoch_<N>_id_D.pth file")
    return dialect


def convert_critic_state(state: Mapping[str, torch.Tensor], to_dialect: str) -> dict[str, torch.Tensor]:
    """Rename a critic state dict's keys into ``to_dialect`` (exact: the layers are identical)."""
    check_dialect(to_dialect)
    clean, _ = check_state_dict(state, where="critic weights")
    source = CRITIC_KEYS[critic_dialect_of(clean)]
    target = CRITIC_KEYS[to_dialect]
    mapping = {source.trunk: target.trunk, source.patch: target.patch, source.aus: target.aus}
    out: dict[str, torch.Tensor] = {}
    for key, value in clean.items():
        head, _, rest = key.partition(".")
        if head not in mapping:
            raise CheckpointError(f"unexpected critic key {key!r}")
        out[f"{mapping[head]}.{rest}"] = value
    return out


def critic_from_state(state: Mapping[str, torch.Tensor], *, dialect: str | None = None,
                      where: str = "critic weights") -> Critic:
    """Build a critic whose size and width are read from the state dict's shapes, then load it strictly."""
    clean, _ = check_state_dict(state, where=where)
    found = critic_dialect_of(clean, where=where)
    dialect = dialect or found
    if found != dialect:
        clean = convert_critic_state(clean, dialect)
    keys = CRITIC_KEYS[dialect]
    try:
        conv_dim = int(clean[f"{keys.trunk}.0.weight"].shape[0])
        aus_weight = clean[f"{keys.aus}.weight"]
    except KeyError as exc:
        raise CheckpointError(f"{where} lacks {exc.args[0]!r}") from exc
    depth = sum(1 for k in clean if k.startswith(f"{keys.trunk}.") and k.endswith(".weight"))
    image_size = int(aus_weight.shape[-1]) * 2**depth
    critic = Critic(dialect, image_size=image_size, conv_dim=conv_dim, num_aus=int(aus_weight.shape[0]))
    load_strict(critic, clean, what="critic", where=where)
    return critic


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], *, what: str, where: str = "weights") -> None:
    """``load_state_dict(strict=True)`` with one error listing missing, unexpected and mis-shaped keys."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    report = key_report(expected, state)
    if report:
        raise CheckpointError(f"{where}: {what} weights do not fit: {report}",
                              hint="check the dialect, image size and width the file was trained with")
    module.load_state_dict(dict(state), strict=True)
