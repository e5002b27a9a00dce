"""GANimation weights files: read safely, recognise the dialect, load strictly, convert.

The loading rules of GANIMATION.md section 5.2:

1. ``torch.load(path, map_location="cpu", weights_only=True)`` (no code runs from the file; new
   zip and legacy PyTorch 0.4-era serialisation alike); anything but a flat mapping of tensors
   is an error that names the file and what was found;
2. a ``module.`` prefix (official multi-GPU checkpoints) is stripped when *every* key has it;
3. the dialect comes from the keys (critic files are recognised and refused with a pointer to
   the generator file);
4. the matching architecture is built (width and depth read from the file) and loaded with
   ``strict=True``; a mismatch is one :class:`CheckpointError` listing the missing, unexpected and
   mis-shaped keys.

Generator weights convert one way, replicate -> official, exactly: each replicate trunk bias sits
right before a non-affine InstanceNorm that subtracts it again, so dropping the biases and giving
the official net's norms scale 1 / shift 0 computes the same function. The reverse is possible
only when every official norm is exactly (1, 0) (e.g. a file made by this converter).
"""

from __future__ import annotations

import hashlib
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..aus import NUM_AUS
from ..errors import CheckpointError
from ..fileio import sha256_file
from .networks import DIALECTS, Generator, expected_shapes

GENERATOR_FILES = "<epoch>_net_gen.pth (replicate) or net_epoch_<N>_id_G.pth (official)"
_SHOW = 6  # keys listed per category in an error


@dataclass(frozen=True)
class GeneratorInfo:
    """What was loaded: enough to record in every dataset the weights render."""

    dialect: str
    conv_dim: int
    repeat_num: int
    sha256: str | None  # of the file's bytes (None for an in-memory state dict)
    path: str | None
    stripped_module_prefix: bool = False


def sha256_state_dict(state_dict: Mapping[str, torch.Tensor]) -> str:
    """A content hash of in-memory weights (key names, dtypes, shapes, bytes, in key order)."""
    digest = hashlib.sha256()
    for key, value in state_dict.items():
        tensor = value.detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def read_state_dict(path: str | Path) -> tuple[OrderedDict[str, torch.Tensor], bool]:
    """Rules 1-2: a flat ``{key: tensor}`` from ``path`` and whether a ``module.`` prefix was stripped."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} does not exist", hint=f"pass a GANimation generator file, {GENERATOR_FILES}")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every failure here is a bad file, report it as one
        text = " ".join(str(exc).split())[:300]
        raise CheckpointError(
            f"{path} is not a readable PyTorch weights file ({type(exc).__name__}: {text})",
            hint="pass a state_dict saved with torch.save(net.state_dict(), ...); pickled modules are refused",
            path=path,
        ) from exc
    return check_state_dict(loaded, where=str(path))


def check_state_dict(loaded: Any, *, where: str) -> tuple[OrderedDict[str, torch.Tensor], bool]:
    """Rules 1-2 on an object already in memory."""
    if not isinstance(loaded, Mapping):
        raise CheckpointError(f"{where} holds a {type(loaded).__name__}, not a state_dict",
                              hint="save the generator with torch.save(net.state_dict(), path)")
    not_tensors = [k for k, v in loaded.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not loaded:
        found = ", ".join(repr(k) for k in list(loaded)[:_SHOW]) or "nothing"
        raise CheckpointError(
            f"{where} is not a flat state_dict of tensors (found keys {found})",
            hint="if this is a training checkpoint, extract the generator's state_dict and save it alone",
        )
    keys = list(loaded)
    prefixed = [k.startswith("module.") for k in keys]
    if all(prefixed):
        return OrderedDict((k[len("module."):], v) for k, v in loaded.items()), True
    if any(prefixed):
        raise CheckpointError(f"{where} mixes keys with and without the 'module.' prefix",
                              hint="the file was assembled by hand; re-save one network's state_dict")
    return OrderedDict(loaded.items()), False


def detect_dialect(keys: Any, *, where: str = "weights") -> tuple[str, str]:
    """Rule 3: ``(dialect, role)`` from state-dict keys; role is ``generator`` or ``critic``."""
    keys = list(keys)
    heads = {k.split(".")[0] for k in keys}
    if heads & {"dis_top", "aus_top"}:
        return "replicate", "critic"
    if heads & {"conv1", "conv2"} and "main" in heads:
        return "official", "critic"
    if heads & {"main", "img_reg", "attetion_reg"}:
        return "official", "generator"
    if heads & {"model", "color_top", "au_top"}:
        return "replicate", "generator"
    raise CheckpointError(
        f"{where} is not a GANimation checkpoint: its keys ({', '.join(keys[:_SHOW])}{', ...' if len(keys) > _SHOW else ''}) "
        "match neither the replicate (model.*, color_top, au_top) nor the official (main.*, img_reg, attetion_reg) layout",
        hint=f"pass a generator file, {GENERATOR_FILES}",
    )


def infer_size(state_dict: Mapping[str, torch.Tensor], dialect: str) -> tuple[int, int]:
    """``(conv_dim, repeat_num)`` read from the stem conv and the residual block indices."""
    trunk = "model" if dialect == "replicate" else "main"
    block = "conv_block" if dialect == "replicate" else "main"
    stem = state_dict.get(f"{trunk}.0.weight")
    conv_dim = int(stem.shape[0]) if stem is not None and stem.ndim == 4 else 64
    pattern = re.compile(rf"^{trunk}\.(\d+)\.{block}\.")
    blocks = {int(m.group(1)) for k in state_dict if (m := pattern.match(k))}
    return conv_dim, (len(blocks) if blocks else 6)


def key_report(expected: Mapping[str, tuple[int, ...]], given: Mapping[str, torch.Tensor]) -> str | None:
    """One text listing missing, unexpected and mis-shaped keys, or None when they all agree."""
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    misshaped = [f"{k} {tuple(given[k].shape)} != {expected[k]}" for k in expected
                 if k in given and tuple(given[k].shape) != tuple(expected[k])]
    parts = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
        if items:
            more = f", ... ({len(items)} in all)" if len(items) > _SHOW else ""
            parts.append(f"{label}: {', '.join(items[:_SHOW])}{more}")
    return "; ".join(parts) or None


def build_generator(state_dict: Mapping[str, torch.Tensor], *, where: str,
                    dialect: str | None = None) -> tuple[Generator, str, int, int]:
    """Rules 3-4 on a stripped state dict: the loaded generator, its dialect and size."""
    found, role = detect_dialect(state_dict.keys(), where=where)
    if role == "critic":
        raise CheckpointError(f"{where} holds GANimation critic (discriminator) weights, not the generator",
                              hint=f"pass the generator file next to it, {GENERATOR_FILES}")
    if dialect is not None and dialect != found:
        hint = ("convert it: miex_gen.gan.weights.convert_replicate_to_official" if found == "replicate"
                else "official generator weights cannot become replicate ones in general; use dialect='official'")
        raise CheckpointError(f"{where} is a {found}-dialect generator, but the {dialect} dialect was asked for", hint=hint)
    conv_dim, repeat_num = infer_size(state_dict, found)
    expected = expected_shapes(found, conv_dim, repeat_num, NUM_AUS)
    report = key_report(expected, state_dict)
    if report:
        raise CheckpointError(
            f"{where} does not match the {found}-dialect GANimation generator "
            f"(conv_dim {conv_dim}, {repeat_num} residual blocks, {NUM_AUS} AUs): {report}",
            hint=f"pass an unmodified generator file, {GENERATOR_FILES}",
        )
    net = Generator(found, conv_dim=conv_dim, repeat_num=repeat_num)
    net.load_state_dict(state_dict, strict=True)
    return net.eval(), found, conv_dim, repeat_num


def load_generator(source: str | Path | Mapping[str, torch.Tensor], *,
                   dialect: str | None = None) -> tuple[Generator, GeneratorInfo]:
    """Load GANimation generator weights (a file path or an in-memory state dict) on the CPU."""
    if isinstance(source, Mapping):
        where, path, sha = "state_dict", None, None
        state_dict, stripped = check_state_dict(source, where=where)
        sha = sha256_state_dict(state_dict)
    else:
        path = Path(source)
        where = str(path)
        state_dict, stripped = read_state_dict(path)
        sha = sha256_file(path)
    if dialect is not None and dialect not in DIALECTS:
        raise CheckpointError(f"unknown GANimation dialect {dialect!r}", hint=f"use one of {', '.join(DIALECTS)}")
    net, found, conv_dim, repeat_num = build_generator(state_dict, where=where, dialect=dialect)
    info = GeneratorInfo(found, conv_dim, repeat_num, sha, None if path is None else str(path), stripped)
    return net, info


# --------------------------------------------------------------------------------------------
# conversion

_REP_TRUNK = re.compile(r"^model\.(\d+)\.(weight|bias)$")
_REP_BLOCK = re.compile(r"^model\.(\d+)\.conv_block\.(\d+)\.(weight|bias)$")


def convert_replicate_to_official(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Replicate-dialect generator weights -> official-dialect weights computing the same function.

    Exact up to float rounding: a trunk bias is followed by a non-affine InstanceNorm, which
    subtracts every channel's mean, bias included; the official norm gets scale 1, shift 0.
    The input is checked strictly first (a wrong file gives the key report).
    """
    stripped, _ = check_state_dict(state_dict, where="replicate weights")
    build_generator(stripped, where="replicate weights", dialect="replicate")  # strict check
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in stripped.items():
        if m := _REP_TRUNK.match(key):
            index, kind = int(m.group(1)), m.group(2)
            if kind == "weight":
                out[f"main.{index}.weight"] = value.clone()
            else:  # the bias sets the size of the norm that follows it
                out[f"main.{index + 1}.weight"] = torch.ones_like(value)
                out[f"main.{index + 1}.bias"] = torch.zeros_like(value)
        elif m := _REP_BLOCK.match(key):
            block, index, kind = int(m.group(1)), int(m.group(2)), m.group(3)
            if kind == "weight":
                out[f"main.{block}.main.{index}.weight"] = value.clone()
            else:
                out[f"main.{block}.main.{index + 1}.weight"] = torch.ones_like(value)
                out[f"main.{block}.main.{index + 1}.bias"] = torch.zeros_like(value)
        elif key == "color_top.0.weight":
            out["img_reg.0.weight"] = value.clone()
        elif key == "au_top.0.weight":
            out["attetion_reg.0.weight"] = value.clone()
        else:  # pragma: no cover - excluded by the strict check above
            raise CheckpointError(f"unexpected key {key} in replicate weights")
    conv_dim, repeat_num = infer_size(stripped, "replicate")
    order = expected_shapes("official", conv_dim, repeat_num)
    return OrderedDict((k, out[k]) for k in order)


def convert_official_to_replicate(state_dict: Mapping[str, torch.Tensor]) -> OrderedDict[str, torch.Tensor]:
    """Official -> replicate works only when every InstanceNorm is the identity (scale 1, shift 0).

    The replicate net has no per-channel scale, and its conv bias is cancelled by the norm that
    follows, so a learnt official norm has nothing to map to. Raises CheckpointError saying so.
    """
    stripped, _ = check_state_dict(state_dict, where="official weights")
    build_generator(stripped, where="official weights", dialect="official")
    conv_dim, repeat_num = infer_size(stripped, "official")
    shapes = expected_shapes("official", conv_dim, repeat_num)
    norm_keys = [k for k, s in shapes.items() if len(s) == 1]
    for key in norm_keys:
        target = 1.0 if key.endswith("weight") else 0.0
        if not torch.all(stripped[key] == target):
            raise CheckpointError(
                f"official generator weights cannot be converted to the replicate dialect: InstanceNorm "
                f"{key} is not {target:g} everywhere, and the replicate network has no parameter that can express it",
                hint="use the official weights as they are (the ganimation renderer loads both dialects)",
            )
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    rep = expected_shapes("replicate", conv_dim, repeat_num)
    for key, shape in rep.items():
        if key == "color_top.0.weight":
            out[key] = stripped["img_reg.0.weight"].clone()
        elif key == "au_top.0.weight":
            out[key] = stripped["attetion_reg.0.weight"].clone()
        elif key.endswith(".bias"):
            out[key] = torch.zeros(shape, dtype=stripped["main.0.weight"].dtype)
        else:
            out[key] = stripped["main." + key[len("model."):].replace(".conv_block.", ".main.")].clone()
    return out
