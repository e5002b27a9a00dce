"""OFF-ApexNet (Gan et al., Signal Processing: Image Communication 2019) on onset→apex flow (u, v), 28 × 28.

Layout used here (MER_PROTOCOL.md §8.3, marked *unconfirmed* there): two streams, one for u and one
for v, each conv 5 × 5 × 6 → ReLU → 2 × 2 max-pool → conv 5 × 5 × 16 → ReLU → 2 × 2 max-pool
('same' padding, 28 → 14 → 7); concatenation (2 × 7 × 7 × 16 = 1,568) → FC 1024 → FC 1024 →
classes. This has 2,664,475 parameters for 3 classes; the STSTNet paper's table lists 2.77 M, so
some layer size of the original differs from this reading (documented in docs/RECOGNIZERS.md).
Dropout between the fully connected layers (0.5) is a miex default.
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import InputSpec, RecognizerModel, register_model


def _stream() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
    )


class OffApexNet(RecognizerModel):
    def __init__(self, num_classes: int = 3, *, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.input_spec = InputSpec(kind="flow", channels=2, size=28)
        self.u_stream = _stream()
        self.v_stream = _stream()
        self.classifier = nn.Sequential(
            nn.Linear(2 * 16 * 7 * 7, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 2 or x.shape[-2:] != (28, 28):
            raise ValueError(f"off_apexnet expects [B, 2, 28, 28] flow (u, v), got {tuple(x.shape)}")
        features = torch.cat([self.u_stream(x[:, :1]), self.v_stream(x[:, 1:2])], dim=1)
        return self.classifier(torch.flatten(features, 1))


@register_model("off_apexnet")
def off_apexnet(num_classes: int = 3, **cfg: object) -> OffApexNet:
    return OffApexNet(num_classes, **cfg)  # type: ignore[arg-type]
