"""STSTNet (Liong et al., FG 2019): a shallow triple-stream net on (u, v, optical strain) at 28 × 28.

Layer table (MER_PROTOCOL.md §8.2, paper Table I): three parallel 3 × 3 convolutions with 3, 5 and
8 kernels on the 28 × 28 × 3 input, each followed by ReLU then BatchNorm; per-stream 3 × 3 max-pool
with stride 3 and padding 1 (28 → 10); dropout 0.5; concatenation (10 × 10 × 16); 2 × 2 average
pool (5 × 5 × 16 = 400); one fully connected layer 400 → classes. 1,683 parameters for 3 classes
(paper: 0.00167 M).
"""

from __future__ import annotations

import torch
from torch import nn

from .registry import InputSpec, RecognizerModel, register_model

STREAM_KERNELS = (3, 5, 8)


class STSTNet(RecognizerModel):
    def __init__(self, num_classes: int = 3, *, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.num_classes = num_classes
        self.input_spec = InputSpec(kind="flow", channels=in_channels, size=28)
        self.streams = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(in_channels, k, kernel_size=3, padding=1),
                nn.ReLU(inplace=True),
                nn.BatchNorm2d(k),
                nn.MaxPool2d(kernel_size=3, stride=3, padding=1),
                nn.Dropout(dropout),
            )
            for k in STREAM_KERNELS
        )
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.fc = nn.Linear(sum(STREAM_KERNELS) * 5 * 5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[-2:] != (28, 28):
            raise ValueError(f"ststnet expects [B, C, 28, 28] flow features, got {tuple(x.shape)}")
        features = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.fc(torch.flatten(self.pool(features), 1))


@register_model("ststnet")
def ststnet(num_classes: int = 3, **cfg: object) -> STSTNet:
    return STSTNet(num_classes, **cfg)  # type: ignore[arg-type]
