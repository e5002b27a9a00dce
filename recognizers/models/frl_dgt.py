"""FRL-DGT (Zhai et al., CVPR 2023): adaptive displacement generation + Transformer fusion.

    onset, apex (grey, S×S) ─► DGM ─► D_raw (tanh, 2 ch) ─► normalise (top-5 mean) ─► D_norm
    [onset, apex, D_norm] (4 × S × S) ─► Local (6 AU regions) → Global (across regions) → Full-face
    ─► LN → mean pool → Linear ─► logits

Training loss: CE + λ_w·Charbonnier(warp(onset, s·D_raw), apex) + λ_s·edge-aware TV(D_raw)
(+ optional λ_f·L1 to a precomputed flow). Only the supplement's facts are public; every choice it
leaves open is a field of ``FrlDgtConfig`` whose default docs/MODELS.md marks "paper" or "miex default".

Usage::

    model = create_model("frl_dgt", num_classes=3, dim=256)      # x: float [B, 2, 1, 224, 224] in [0, 1]
    out = model(x); total, terms = model.loss(out, y, x)
    model.set_epoch(epoch)   # DGM-only warm-up for the first ``dgm_pretrain_epochs`` epochs
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from miex_gen.errors import ConfigError, DataError
from recognizers.models.au_regions import (
    DEFAULT_BOX_FRACTIONS,
    DEFAULT_CENTRES,
    DEFAULT_CENTRES_SOURCE,
    NUM_REGIONS,
    REGION_NAMES,
    box_size_px,
    check_centres,
    load_centres,
    region_boxes,
)
from recognizers.models.frl_dgt_parts import (
    DisplacementGenerator,
    TransformerFusion,
    charbonnier,
    edge_aware_tv,
    normalise_displacement,
    warp,
)
from recognizers.models.registry import InputSpec, RecognizerModel, register_model

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma, for RGB inputs


@dataclass
class FrlDgtConfig:
    """Every FRL-DGT choice; ``PAPER_FIELDS`` lists the ones the supplement fixes."""

    image_size: int = 224
    # Displacement Generation Module
    dgm_enabled: bool = True            # False: fusion sees only onset and apex (the "without DGM" ablation)
    dgm_width: float = 1.0              # hidden-channel multiplier; 1.0 is the paper's table
    dgm_negative_slope: float = 0.2
    dgm_bias: bool = True
    dgm_align_corners: bool = False
    dgm_scale_px: float = 8.0           # pixels per unit of tanh output, for the warp loss
    dgm_pretrain_epochs: int = 5        # DGM-only warm-up epochs (applied through ``set_epoch``)
    dgm_pretrain_only: bool = False     # train the DGM alone (warp + smooth), whatever the epoch
    dgm_freeze: bool = False            # DGM weights and BatchNorm statistics fixed
    # self-supervised displacement losses
    loss_warp: float = 1.0
    loss_smooth: float = 0.1
    loss_flow: float = 0.0              # needs a precomputed flow passed to ``loss(..., flow=)``
    charbonnier_eps: float = 1e-3
    smooth_edge_alpha: float = 10.0
    # displacement normalisation (supplement eq. 1)
    norm_topk: int = 5
    norm_eps: float = 1e-4
    norm_per_channel: bool = False
    # AU regions
    region_centres: tuple[tuple[float, float], ...] | None = None   # fractions (x, y); None = defaults
    region_centres_file: str | None = None                          # JSON from au_regions.save_centres
    region_boxes: tuple[tuple[float, float], ...] = DEFAULT_BOX_FRACTIONS  # (w, h) fractions of the side
    region_patch: int = 8
    full_patch: int = 16
    # Transformer Fusion
    dim: int = 256
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    drop_path: float = 0.1
    depth_local: int = 2
    depth_global: int = 2
    depth_full: int = 4
    fuse: str = "before"
    # classification loss
    label_smoothing: float = 0.0

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> FrlDgtConfig:
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(cfg) - names)
        if unknown:
            raise ConfigError(f"unknown frl_dgt option(s) {', '.join(unknown)}",
                              hint=f"valid options: {', '.join(sorted(names))}")
        out = cls(**cfg)
        out.validate()
        return out

    def validate(self) -> None:
        def bad(name: str, why: str) -> ConfigError:
            return ConfigError(f"frl_dgt option {name}={getattr(self, name)!r}: {why}")

        if self.image_size <= 0 or self.image_size % 4:
            raise bad("image_size", "must be a positive multiple of 4 (the DGM halves it twice)")
        if self.image_size % self.full_patch:
            raise bad("full_patch", f"must divide image_size {self.image_size}")
        if self.region_patch <= 0:
            raise bad("region_patch", "must be positive")
        if self.dgm_width <= 0:
            raise bad("dgm_width", "must be positive")
        if self.norm_topk < 1:
            raise bad("norm_topk", "must be at least 1")
        if self.norm_eps <= 0:
            raise bad("norm_eps", "must be positive")
        if self.dim % self.heads:
            raise bad("heads", f"must divide dim {self.dim}")
        if self.fuse not in ("before", "after"):
            raise bad("fuse", "choose 'before' or 'after'")
        for name in ("depth_local", "depth_global", "depth_full"):
            if getattr(self, name) < 1:
                raise bad(name, "must be at least 1")
        for name in ("loss_warp", "loss_smooth", "loss_flow", "dropout", "drop_path", "label_smoothing"):
            if getattr(self, name) < 0:
                raise bad(name, "must not be negative")
        if self.region_centres is not None and self.region_centres_file is not None:
            raise bad("region_centres_file", "give region_centres or region_centres_file, not both")
        warms_up = self.dgm_enabled and (self.dgm_pretrain_only or self.dgm_pretrain_epochs > 0)
        if warms_up and self.loss_warp == 0 and self.loss_smooth == 0 and self.loss_flow == 0:
            raise bad("dgm_pretrain_epochs", "a DGM warm-up needs loss_warp, loss_smooth or loss_flow > 0 "
                      "(or set dgm_pretrain_epochs=0)")
        if self.dgm_pretrain_only and self.dgm_freeze:
            raise bad("dgm_freeze", "a frozen DGM cannot be pretrained (dgm_pretrain_only is set)")
        boxes_ok = len(self.region_boxes) == NUM_REGIONS and all(
            len(box) == 2 and all(0 < float(v) <= 1 for v in box) for box in self.region_boxes)
        if not boxes_ok:
            raise bad("region_boxes", f"needs {NUM_REGIONS} (width, height) pairs, fractions of the side in (0, 1]")


# Fields whose default is stated by the paper (supplement Table 1, eq. 1, §2); the rest are miex defaults.
PAPER_FIELDS: frozenset[str] = frozenset({
    "image_size", "dgm_width", "norm_topk", "norm_eps", "depth_local", "depth_global", "depth_full",
})


class FrlDgt(RecognizerModel):
    """FRL-DGT on grey onset/apex pairs; ``forward`` returns a dict (logits, displacements, frames)."""

    def __init__(self, num_classes: int = 3, config: FrlDgtConfig | None = None):
        super().__init__()
        cfg = config or FrlDgtConfig()
        cfg.validate()
        self.config = cfg
        self.num_classes = num_classes
        self.input_spec = InputSpec(kind="frames", channels=1, size=cfg.image_size, num_frames=2)

        centres, source = self._initial_centres(cfg)
        self.register_buffer("region_centres", torch.as_tensor(centres, dtype=torch.float32))
        self.region_centres_source = source
        self._box_sizes = [box_size_px(f, cfg.image_size, cfg.region_patch) for f in cfg.region_boxes]

        self.dgm = DisplacementGenerator(width=cfg.dgm_width, negative_slope=cfg.dgm_negative_slope,
                                         bias=cfg.dgm_bias, align_corners=cfg.dgm_align_corners) \
            if cfg.dgm_enabled else None
        self.fusion = TransformerFusion(
            in_channels=4 if cfg.dgm_enabled else 2, image_size=cfg.image_size, boxes=self.boxes(),
            dim=cfg.dim, heads=cfg.heads, mlp_ratio=cfg.mlp_ratio, dropout=cfg.dropout,
            drop_path=cfg.drop_path, depth_local=cfg.depth_local, depth_global=cfg.depth_global,
            depth_full=cfg.depth_full, region_patch=cfg.region_patch, full_patch=cfg.full_patch, fuse=cfg.fuse)
        self.head = torch.nn.Linear(cfg.dim, num_classes)
        self.pretraining = cfg.dgm_pretrain_only
        if cfg.dgm_freeze and self.dgm is not None:
            self.dgm.requires_grad_(False)
        # the fusion gets no gradient during the DGM warm-up: DistributedDataParallel must allow that
        self.ddp_find_unused_parameters = self.dgm is not None and not cfg.dgm_freeze and (
            cfg.dgm_pretrain_only or cfg.dgm_pretrain_epochs > 0)
        self.register_load_state_dict_post_hook(lambda module, keys: module._sync_boxes())

    # ------------------------------------------------------------------ regions
    @staticmethod
    def _initial_centres(cfg: FrlDgtConfig) -> tuple[np.ndarray, str]:
        if cfg.region_centres_file is not None:
            centres, prov = load_centres(cfg.region_centres_file)
            return centres, f"file {cfg.region_centres_file}: {prov}"
        if cfg.region_centres is not None:
            return check_centres(cfg.region_centres, "frl_dgt option region_centres"), "config region_centres"
        return np.asarray(DEFAULT_CENTRES, dtype=np.float32), DEFAULT_CENTRES_SOURCE

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """The six region boxes (x0, y0, w, h) in input pixels, from the stored centres."""
        return region_boxes(self.region_centres.detach().cpu().numpy(), self._box_sizes, self.config.image_size)

    def set_region_centres(self, centres: Any, source: str) -> None:
        """Replace the dataset's region centres (fractions [6, 2]) and record where they came from."""
        self.region_centres.copy_(torch.as_tensor(check_centres(centres), dtype=torch.float32))
        self.region_centres_source = source
        self._sync_boxes()

    def _sync_boxes(self) -> None:
        self.fusion.set_boxes(self.boxes(), self.config.image_size)

    def get_extra_state(self) -> dict[str, Any]:
        """Saved in every state_dict: the centres' provenance and the resolved config."""
        return {"region_centres_source": self.region_centres_source, "region_names": list(REGION_NAMES),
                "config": self.config_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if isinstance(state, dict) and "region_centres_source" in state:
            self.region_centres_source = str(state["region_centres_source"])

    # ------------------------------------------------------------------ schedule
    def set_epoch(self, epoch: int) -> None:
        """DGM-only warm-up: epochs < ``dgm_pretrain_epochs`` train the DGM alone (0-based epochs)."""
        cfg = self.config
        self.pretraining = cfg.dgm_pretrain_only or (
            self.dgm is not None and not cfg.dgm_freeze and epoch < cfg.dgm_pretrain_epochs)

    def train(self, mode: bool = True) -> FrlDgt:
        super().train(mode)
        if self.config.dgm_freeze and self.dgm is not None:
            self.dgm.eval()  # frozen BatchNorm statistics too
        return self

    # ------------------------------------------------------------------ forward
    def _frames(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.config.image_size
        if x.dim() != 5 or x.shape[1] != 2 or x.shape[2] not in (1, 3) or tuple(x.shape[-2:]) != (s, s):
            raise DataError(
                f"frl_dgt expects frames [batch, 2 (onset, apex), 1 or 3, {s}, {s}], got {tuple(x.shape)}",
                hint=f"resize faces to {s}x{s} or set image_size")
        if x.shape[2] == 3:
            w = torch.tensor(GREY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
            x = (x * w).sum(2, keepdim=True)
        return x[:, 0], x[:, 1]

    def displacement(self, onset: torch.Tensor, apex: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D_raw, D_norm), each [B, 2, H, W]."""
        raw = self.dgm(torch.cat([onset, apex], dim=1))
        cfg = self.config
        return raw, normalise_displacement(raw, cfg.norm_topk, cfg.norm_eps, cfg.norm_per_channel)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        onset, apex = self._frames(x)
        out: dict[str, torch.Tensor] = {"onset": onset, "apex": apex}
        if self.dgm is not None:
            out["disp_raw"], out["disp_norm"] = self.displacement(onset, apex)
            inp = torch.cat([onset, apex, out["disp_norm"]], dim=1)
        else:
            inp = torch.cat([onset, apex], dim=1)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.pretraining):
            tokens = self.fusion(inp)
            out["logits"] = self.head(tokens.mean(1))
        return out

    def loss(self, output: torch.Tensor | dict[str, torch.Tensor], target: torch.Tensor, x: torch.Tensor,
             *, flow: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """CE (skipped during DGM warm-up) + weighted displacement terms; returns (total, {term: value}).

        ``flow``: optional [B, 2, H, W] precomputed onset→apex flow in pixels, used when ``loss_flow`` > 0.
        """
        cfg = self.config
        if not isinstance(output, dict):
            raise TypeError("FrlDgt.loss needs the dict returned by FrlDgt.forward")
        terms: dict[str, torch.Tensor] = {}
        if not self.pretraining:
            terms["ce"] = F.cross_entropy(output["logits"], target, label_smoothing=cfg.label_smoothing)
        total = terms["ce"] if "ce" in terms else output["logits"].new_zeros(())
        if self.dgm is not None:
            raw = output["disp_raw"]
            if cfg.loss_warp > 0:
                warped = warp(output["onset"], cfg.dgm_scale_px * raw)
                terms["warp"] = charbonnier(warped, output["apex"], cfg.charbonnier_eps)
                total = total + cfg.loss_warp * terms["warp"]
            if cfg.loss_smooth > 0:
                terms["smooth"] = edge_aware_tv(raw, output["apex"], cfg.smooth_edge_alpha)
                total = total + cfg.loss_smooth * terms["smooth"]
            if cfg.loss_flow > 0:
                if flow is None:
                    raise ConfigError("frl_dgt option loss_flow > 0 needs a precomputed flow",
                                      hint="pass flow= to FrlDgt.loss, or set loss_flow=0")
                terms["flow"] = (cfg.dgm_scale_px * raw - flow).abs().mean()
                total = total + cfg.loss_flow * terms["flow"]
        return total, {k: float(v.detach()) for k, v in terms.items()}

    # ------------------------------------------------------------------ description
    def config_dict(self) -> dict[str, Any]:
        d = asdict(self.config)
        d["region_centres"] = self.region_centres.detach().cpu().numpy().round(6).tolist()
        return d

    def describe(self) -> dict[str, Any]:
        """Model card: every option with its value and whether the paper states it or miex chose it."""
        cfg = self.config_dict()
        return {
            "model": "frl_dgt", "num_classes": self.num_classes, "input_spec": self.input_spec.to_dict(),
            "options": {k: {"value": v, "source": "paper" if k in PAPER_FIELDS else "miex default"}
                        for k, v in cfg.items()},
            "region_names": list(REGION_NAMES), "region_boxes_px": [list(b) for b in self.boxes()],
            "region_centres_source": self.region_centres_source,
            "parameters": {"dgm": sum(p.numel() for p in self.dgm.parameters()) if self.dgm is not None else 0,
                           "total": sum(p.numel() for p in self.parameters())},
        }


@register_model("frl_dgt")
def frl_dgt(num_classes: int = 3, **cfg: Any) -> FrlDgt:
    """``create_model("frl_dgt", num_classes, **FrlDgtConfig fields)``."""
    return FrlDgt(num_classes, FrlDgtConfig.from_dict(cfg))


__all__ = ["FrlDgt", "FrlDgtConfig", "PAPER_FIELDS", "frl_dgt"]
