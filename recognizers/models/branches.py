"""MiE-X's two frame recognizers (MIEX_PROTOCOL.md §9.1), both on torchvision's ResNet-18.

* ``branches``: two *unshared* ResNet-18 trunks, onset → trunk 0 and apex → trunk 1, each global
  average pooled to 512-d, concatenated (1024) → 128 → 32 → classes (Liu et al., FG 2019).
* ``apex``: one ResNet-18 on the apex frame, 512 → 128 → 32 → classes (Peng et al., FG 2018).

Heads are Linear → ReLU → Dropout(0.5) twice, then the classifier, Xavier-normal weights and zero
biases as in the original code. ImageNet weights are loaded only from a local file
(``pretrained=PATH``, torchvision's ``resnet18-*.pth`` layout); nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

from miex_gen.errors import CheckpointError, ConfigError

from .registry import InputSpec, RecognizerModel, register_model

TRUNK_FEATURES = 512


def resnet18_trunk(in_channels: int = 3, pretrained: str | Path | None = None) -> nn.Module:
    """A ResNet-18 without its classifier (GAP output, 512-d), optionally with local ImageNet weights.

    With ``in_channels=1`` the first convolution takes one channel; pretrained RGB filters are
    summed over the colour axis so a grey image sees the same response as its RGB copy.
    """
    if in_channels not in (1, 3):
        raise ConfigError(f"in_channels must be 1 or 3, got {in_channels}")
    net = resnet18(weights=None)
    net.fc = nn.Identity()
    if pretrained is not None:
        load_imagenet_weights(net, pretrained)
    if in_channels == 1:
        rgb = net.conv1.weight.detach()
        net.conv1 = nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        with torch.no_grad():
            net.conv1.weight.copy_(rgb.sum(dim=1, keepdim=True))
    return net


def load_imagenet_weights(net: nn.Module, path: str | Path) -> None:
    """Load a torchvision ResNet-18 state dict from ``path`` into ``net`` (its ``fc`` is ignored)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"pretrained weights file {path} not found",
                          hint="download torchvision's resnet18-f37072fd.pth once and pass its path; "
                               "miex never downloads weights")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise CheckpointError(f"cannot read pretrained weights: {exc}", path=path) from exc
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.removeprefix("module.").startswith("fc.")}
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"not a torchvision ResNet-18 state dict: {len(missing)} missing keys (e.g. {missing[:2]}), "
            f"{len(unexpected)} unexpected (e.g. {unexpected[:2]})", path=path)


def mlp_head(in_features: int, num_classes: int, hidden: tuple[int, ...] = (128, 32), dropout: float = 0.5) -> nn.Sequential:
    """Linear → ReLU → Dropout per hidden size, then the classifier; Xavier-normal weights, zero bias."""
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        width = h
    layers.append(nn.Linear(width, num_classes))
    head = nn.Sequential(*layers)
    for module in head:
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
    return head


class Branches(RecognizerModel):
    """Onset and apex through two unshared ResNet-18s, concatenated, MLP head."""

    def __init__(self, num_classes: int = 3, *, in_channels: int = 3, size: int = 224,
                 pretrained: str | Path | None = None, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.input_spec = InputSpec(kind="frames", channels=in_channels, size=size, num_frames=2)
        self.onset_trunk = resnet18_trunk(in_channels, pretrained)
        self.apex_trunk = resnet18_trunk(in_channels, pretrained)
        self.head = mlp_head(2 * TRUNK_FEATURES, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 2:
            raise ValueError(f"branches expects [B, 2, C, H, W] (onset, apex), got {tuple(x.shape)}")
        features = torch.cat([self.onset_trunk(x[:, 0]), self.apex_trunk(x[:, 1])], dim=1)
        return self.head(features)


class Apex(RecognizerModel):
    """The apex frame through one ResNet-18, MLP head."""

    def __init__(self, num_classes: int = 3, *, in_channels: int = 3, size: int = 224,
                 pretrained: str | Path | None = None, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.input_spec = InputSpec(kind="frames", channels=in_channels, size=size, num_frames=1)
        self.trunk = resnet18_trunk(in_channels, pretrained)
        self.head = mlp_head(TRUNK_FEATURES, num_classes, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"apex expects [B, T, C, H, W] with the apex last, got {tuple(x.shape)}")
        return self.head(self.trunk(x[:, -1]))


@register_model("branches")
def branches(num_classes: int = 3, **cfg: object) -> Branches:
    return Branches(num_classes, **cfg)  # type: ignore[arg-type]


@register_model("apex")
def apex(num_classes: int = 3, **cfg: object) -> Apex:
    return Apex(num_classes, **cfg)  # type: ignore[arg-type]
