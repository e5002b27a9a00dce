"""FRL-DGT building blocks: the Displacement Generation Module, its normalisation and self-supervised
losses, and the three Transformer Fusion modules.

Paper facts (supplement Table 1, eq. 1, §2) are marked "paper"; everything else is a miex default that
``recognizers.models.frl_dgt.FrlDgtConfig`` names (see docs/MODELS.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

# ---------------------------------------------------------------- Displacement Generation Module


class DisplacementGenerator(nn.Module):
    """The DGM of supplement Table 1 (paper): [B, 2, H, W] onset/apex grey → [B, 2, H, W] tanh displacement.

    Conv1–Conv9 are each followed by BatchNorm and LeakyReLU; two bilinear upsamplings; Conv3's output
    is concatenated with Conv7's; Conv10 + Tanh. Padding 1 (3×3 and 4×4/2 convs halve exactly), conv
    biases on and slope 0.2 are miex defaults. ``width`` scales every hidden channel count (1.0 = paper,
    618,338 parameters); smaller widths exist only for quick experiments and tests.
    H and W must be divisible by 4.
    """

    def __init__(self, *, width: float = 1.0, negative_slope: float = 0.2, bias: bool = True,
                 align_corners: bool = False):
        super().__init__()
        c32, c64, c128 = (max(1, int(round(c * width))) for c in (32, 64, 128))
        # (name, in, out, kernel, stride, padding)
        table = [
            ("conv1", 2, c32, 3, 1, 1), ("conv2", c32, c64, 4, 2, 1), ("conv3", c64, c64, 3, 1, 1),
            ("conv4", c64, c128, 4, 2, 1), ("conv5", c128, c128, 3, 1, 1), ("conv6", c128, c128, 3, 1, 1),
            ("conv7", c128, c64, 1, 1, 0), ("conv8", 2 * c64, c64, 3, 1, 1), ("conv9", c64, c64, 3, 1, 1),
        ]
        for i, (name, cin, cout, k, s, p) in enumerate(table, start=1):
            self.add_module(name, nn.Conv2d(cin, cout, k, s, p, bias=bias))
            self.add_module(f"bn{i}", nn.BatchNorm2d(cout))
        self.conv10 = nn.Conv2d(c64, 2, 3, 1, 1, bias=bias)
        self.negative_slope = negative_slope
        self.align_corners = align_corners

    def _block(self, i: int, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))
        return F.leaky_relu(x, self.negative_slope)

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=self.align_corners)

    def forward(self, pair: torch.Tensor) -> torch.Tensor:
        x = self._block(1, pair)
        x = self._block(2, x)
        skip = self._block(3, x)                      # 1/2 resolution, kept for the concat
        x = self._block(6, self._block(5, self._block(4, skip)))
        x = self._block(7, self._up(x))               # back to 1/2
        x = self._block(9, self._block(8, torch.cat([skip, x], dim=1)))
        return torch.tanh(self.conv10(self._up(x)))


def normalise_displacement(d: torch.Tensor, k: int = 5, eps: float = 1e-4,
                           per_channel: bool = False) -> torch.Tensor:
    """Supplement eq. 1: D / max(mean of the k largest |D|, eps), per sample (paper k = 5, eps = 1e-4).

    The top-k is taken over both channels of one sample (miex default) or per channel; differentiable
    (``topk`` passes gradients to the selected entries). An all-zero D gives zeros.
    """
    flat = d.abs().flatten(2) if per_channel else d.abs().flatten(1)
    k = min(k, flat.shape[-1])
    scale = flat.topk(k, dim=-1).values.mean(dim=-1).clamp_min(eps)
    shape = (*scale.shape, *([1] * (d.dim() - scale.dim())))
    return d / scale.reshape(shape)


def warp(image: torch.Tensor, flow_px: torch.Tensor) -> torch.Tensor:
    """Backward warp: out(p) = image(p + flow(p)), bilinear, border padding; flow [B, 2, H, W] in pixels
    (channel 0 horizontal, channel 1 vertical)."""
    _, _, h, w = image.shape
    ys = torch.arange(h, device=image.device, dtype=image.dtype)
    xs = torch.arange(w, device=image.device, dtype=image.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    x = gx + flow_px[:, 0]
    y = gy + flow_px[:, 1]
    # pixel centres -> [-1, 1] with align_corners=False
    grid = torch.stack([(2 * x + 1) / w - 1, (2 * y + 1) / h - 1], dim=-1)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)


def charbonnier(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Mean of sqrt((a − b)² + eps²): a robust L1 that stays differentiable at 0."""
    return torch.sqrt((a - b) ** 2 + eps * eps).mean()


def edge_aware_tv(d: torch.Tensor, image: torch.Tensor, alpha: float = 10.0) -> torch.Tensor:
    """First-order total variation of ``d``, down-weighted by exp(−alpha·|∇image|) across image edges."""
    dx = (d[..., :, 1:] - d[..., :, :-1]).abs().mean(1)
    dy = (d[..., 1:, :] - d[..., :-1, :]).abs().mean(1)
    wx = torch.exp(-alpha * (image[..., :, 1:] - image[..., :, :-1]).abs().mean(1))
    wy = torch.exp(-alpha * (image[..., 1:, :] - image[..., :-1, :]).abs().mean(1))
    return (dx * wx).mean() + (dy * wy).mean()


# ---------------------------------------------------------------- Transformer blocks


class DropPath(nn.Module):
    """Stochastic depth: drop a sample's residual branch with probability ``p`` during training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1.0 - self.p)


class Attention(nn.Module):
    """Multi-head self-attention through ``scaled_dot_product_attention`` (fused kernels where available)."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class AttnBlock(nn.Module):
    """One pre-norm Transformer layer (supplement Fig. 1): x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float, dropout: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(hidden, dim), nn.Dropout(dropout))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class AttnStack(nn.Module):
    """The Attention Learning (Attn) block: a stack of L pre-norm Transformer layers."""

    def __init__(self, depth: int, dim: int, heads: int, mlp_ratio: float, dropout: float, drop_path: float):
        super().__init__()
        self.blocks = nn.ModuleList(AttnBlock(dim, heads, mlp_ratio, dropout, drop_path) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class FusionLayer(nn.Module):
    """Linear fusion of concatenated token streams: Linear([a ‖ b ‖ …]) → dim."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, dim)

    def forward(self, *parts: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.cat(parts, dim=-1))


class TransformerFusion(nn.Module):
    """Local → Global → Full-face fusion over a [B, C_in, S, S] input (onset, apex, displacement).

    * Local (``depth_local``): each AU-region box is patchified (``region_patch``) and attended within
      itself, weights shared by the six regions; each region is summarised by the mean of its tokens.
    * Global (``depth_global``): attention across the six region tokens. Its input is the fusion of the
      local summaries with each region's own (pre-attention) mean patch embedding.
    * Full-face (``depth_full``): attention over the full-face patches (``full_patch``; 196 at 224/16).
      Each patch is fused with the mean global token and with the global tokens of the regions whose
      boxes cover it (weighted by the covered area).

    ``fuse="before"`` applies the fusion layers before the Attn stacks (as the paper's ablation prefers),
    ``"after"`` runs each Attn stack on its own tokens and fuses its output afterwards.
    """

    def __init__(self, *, in_channels: int, image_size: int, boxes: Sequence[tuple[int, int, int, int]],
                 dim: int, heads: int, mlp_ratio: float, dropout: float, drop_path: float,
                 depth_local: int, depth_global: int, depth_full: int, region_patch: int, full_patch: int,
                 fuse: str):
        super().__init__()
        if fuse not in ("before", "after"):
            raise ValueError(f"fuse must be 'before' or 'after', not {fuse!r}")
        if image_size % full_patch:
            raise ValueError(f"image size {image_size} is not a multiple of full_patch {full_patch}")
        self.fuse = fuse
        self.region_patch = region_patch
        self.full_patch = full_patch
        self.boxes = [tuple(b) for b in boxes]
        self.box_sizes = [(w, h) for _, _, w, h in boxes]
        grid = image_size // full_patch
        num_regions = len(boxes)

        def stack(depth: int) -> AttnStack:
            return AttnStack(depth, dim, heads, mlp_ratio, dropout, drop_path)

        self.region_embed = nn.Conv2d(in_channels, dim, region_patch, region_patch)
        self.region_pos = nn.ParameterList(
            nn.Parameter(torch.zeros(1, (h // region_patch) * (w // region_patch), dim)) for w, h in self.box_sizes
        )
        self.region_id = nn.Parameter(torch.zeros(1, num_regions, dim))
        self.full_embed = nn.Conv2d(in_channels, dim, full_patch, full_patch)
        self.full_pos = nn.Parameter(torch.zeros(1, grid * grid, dim))

        self.local = stack(depth_local)
        self.global_ = stack(depth_global)
        self.full = stack(depth_full)
        self.fuse_global = FusionLayer(2 * dim, dim)
        self.fuse_full = FusionLayer(3 * dim, dim)
        self.norm = nn.LayerNorm(dim)
        for p in [*self.region_pos, self.region_id, self.full_pos]:
            nn.init.trunc_normal_(p, std=0.02)
        self.register_buffer("coverage", self._coverage(boxes, image_size), persistent=False)

    def _coverage(self, boxes: Sequence[tuple[int, int, int, int]], image_size: int) -> torch.Tensor:
        """[patches, regions]: share of each full-face patch covered by each box, rows normalised."""
        grid = image_size // self.full_patch
        cov = torch.zeros(grid * grid, len(boxes))
        for r, (x0, y0, w, h) in enumerate(boxes):
            mask = torch.zeros(image_size, image_size)
            mask[y0:y0 + h, x0:x0 + w] = 1
            cov[:, r] = F.avg_pool2d(mask[None, None], self.full_patch).flatten()
        return cov / cov.sum(1, keepdim=True).clamp_min(1e-6)

    def set_boxes(self, boxes: Sequence[tuple[int, int, int, int]], image_size: int) -> None:
        """Move the (same-sized) boxes, e.g. after loading centres from a checkpoint."""
        if [(w, h) for _, _, w, h in boxes] != self.box_sizes:
            raise ValueError("region box sizes cannot change after construction")
        self.boxes = [tuple(b) for b in boxes]
        self.coverage = self._coverage(boxes, image_size).to(self.coverage.device)

    def tokens(self, inp: torch.Tensor) -> dict[str, list[torch.Tensor] | torch.Tensor]:
        """The token inputs of the three paths (before any attention or fusion), for tests and probes."""
        local_in = []
        for r, (x0, y0, w, h) in enumerate(self.boxes):
            crop = inp[:, :, y0:y0 + h, x0:x0 + w]
            tok = self.region_embed(crop).flatten(2).transpose(1, 2)
            local_in.append(tok + self.region_pos[r] + self.region_id[:, r:r + 1])
        full_in = self.full_embed(inp).flatten(2).transpose(1, 2) + self.full_pos
        return {"local": local_in, "full": full_in}

    def forward(self, inp: torch.Tensor, *, return_tokens: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, dict[str, torch.Tensor | list[torch.Tensor]]]:
        """Returns the normalised full-face tokens [B, N, dim] (and the path inputs if asked)."""
        toks = self.tokens(inp)
        local_summary = torch.stack([self.local(t).mean(1) for t in toks["local"]], dim=1)  # [B, 6, dim]
        region_raw = torch.stack([t.mean(1) for t in toks["local"]], dim=1)                # [B, 6, dim]
        if self.fuse == "before":
            glob = self.global_(self.fuse_global(local_summary, region_raw))
        else:
            glob = self.fuse_global(self.global_(region_raw), local_summary)
        full = toks["full"]
        context = torch.einsum("pr,brd->bpd", self.coverage, glob)
        mean_glob = glob.mean(1, keepdim=True).expand(-1, full.shape[1], -1)
        if self.fuse == "before":
            out = self.full(self.fuse_full(full, mean_glob, context))
        else:
            out = self.fuse_full(self.full(full), mean_glob, context)
        out = self.norm(out)
        if return_tokens:
            return out, {"local": toks["local"], "global": region_raw, "global_fused": local_summary,
                         "full": full}
        return out
