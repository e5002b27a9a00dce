"""Weight initialisation of both GANimation implementations (GANIMATION.md §6), seeded.

Conv and transposed-conv weights ~ N(0, 0.02), biases 0; InstanceNorm affine parameters keep
PyTorch's (1, 0). Drawn from a ``torch.Generator`` so that a run seed fixes the start point.
"""

from __future__ import annotations

import torch
from torch import nn

_INIT_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


@torch.no_grad()
def init_gan_weights(module: nn.Module, generator: torch.Generator, std: float = 0.02) -> nn.Module:
    for layer in module.modules():
        if isinstance(layer, _INIT_TYPES):
            weight = torch.randn(layer.weight.shape, generator=generator, dtype=layer.weight.dtype) * std
            layer.weight.copy_(weight)
            if layer.bias is not None:
                layer.bias.zero_()
    return module
