"""``train(config)``: GANimation training, resumable, seeded, single-process or under torchrun.

One iteration (GANIMATION.md §7):

1. **critic step**: fakes from G (no gradient) for targets drawn from other images' labels;
   loss λ_adv·(mean P(fake) − mean P(real)) + λ_y·MSE(ŷ(real), y_real) + λ_gp·GP;
2. every ``critic_steps``-th iteration a **generator step**: fake and cycle pass, loss
   −λ_adv·mean P(fake) + λ_y·MSE(ŷ(fake), y_target) + λ_cyc·L1(cycle, real) + attention terms.

Everything random in iteration ``i`` (the batch order of its epoch, flips, target AUs, noise,
the gradient-penalty mix) is derived from ``(seed, i)``, so a resumed run, even one resumed
mid-epoch, reproduces the uninterrupted run's losses exactly; the global RNG states are saved
too, for anything else that draws from them.

**DDP and the gradient penalty's double backward.** DistributedDataParallel all-reduces
gradients from hooks on the parameters, and expects one forward of the wrapped module per
backward, with every parameter used. So: the critic's real and fake scores come from *one*
forward of the wrapped critic (the two halves of one batch; the critic has no normalisation, so
this equals two forwards); the gradient penalty's forward and ``autograd.grad(create_graph=True)``
go through the *unwrapped* critic, whose second-order gradients flow into the same parameters
and are reduced by the same hooks in the one ``backward()``; G's fake and cycle passes are one
forward of a wrapped ``GeneratorCycle``; a network that is only evaluated (G in the critic step,
the critic in the generator step) is called unwrapped. No ``find_unused_parameters`` is needed.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_json, remove_stale_temp_files
from ..errors import ConfigError, DataError
from ..seeding import derive_seed, numpy_rng, torch_generator
from ..versions import environment_info
from . import losses as L
from .checkpoint import STATE_NAME, load_state, save_state, save_weights
from .config import TrainConfig, config_differences
from .critic import Critic
from .data import FaceAuData, build_face_cache, collect_labelled_faces
from .distributed import (
    DistContext,
    assert_in_sync,
    barrier,
    broadcast_flag,
    init_distributed,
    mean_across_ranks,
    shutdown,
)
from .losslog import LossLog, plot_losses
from .networks import Generator, compose, init_weights
from .sample import epoch_grid, write_png
from .schedule import Schedule, set_lr

log = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
CACHE_DIR = "cache"


@dataclass
class Callbacks:
    """Hooks for a progress display; every one is optional and called on rank 0 only."""

    on_data: Callable[[int, int], None] | None = None  # faces cached, total
    on_start: Callable[[int, int], None] | None = None  # first iteration, total iterations
    on_iteration: Callable[[int, dict[str, Any]], None] | None = None
    on_epoch: Callable[[int, dict[str, Path]], None] | None = None


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int  # global iterations completed
    total_iterations: int
    epochs_completed: int
    stopped_early: bool
    files: dict[str, Path] = field(default_factory=dict)  # latest generator / critic / grid / state
    data_summary: str = ""
    timing: dict[str, float] = field(default_factory=dict)  # data_s, step_s (this process, this call)


def build_generator(config: TrainConfig) -> nn.Module:
    """The renderer's generator (one definition, shared), at the configured width and depth."""
    return Generator(config.dialect, conv_dim=config.conv_dim, repeat_num=config.repeat_num)


def build_networks(config: TrainConfig) -> tuple[nn.Module, Critic]:
    """G and D with GANimation's N(0, 0.02) initialisation drawn from the run seed."""
    generator = build_generator(config)
    critic = Critic(config.dialect, image_size=config.image_size, conv_dim=config.critic_width)
    init_weights(generator, torch_generator(config.seed, "gan", "init", "generator"))
    init_weights(critic, torch_generator(config.seed, "gan", "init", "critic"))
    return generator, critic


def generate(generator: nn.Module, images: torch.Tensor, aus: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(composed output, colour, attention) of G for ``aus`` on the /5 scale."""
    out = generator(images, aus)
    colour, mask = out[0], out[1]
    return compose(images, colour, mask), colour, mask


class GeneratorCycle(nn.Module):
    """G's fake pass and cycle pass as one forward (DDP wants one forward per backward)."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, real: torch.Tensor, real_aus: torch.Tensor, target_aus: torch.Tensor):
        fake, _, mask = generate(self.generator, real, target_aus)
        rec, _, mask_rec = generate(self.generator, fake, real_aus)
        return fake, mask, rec, mask_rec


def critic_loss(critic: nn.Module, critic_plain: Critic, real: torch.Tensor, fake: torch.Tensor,
                real_aus: torch.Tensor, alpha: torch.Tensor, w: L.LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """The critic's total loss and its terms. ``critic`` may be DDP-wrapped; the GP uses ``critic_plain``."""
    n = real.shape[0]
    maps, aus_pred = critic(torch.cat([real, fake.detach()]))
    adv = L.wasserstein_critic(maps[:n], maps[n:])
    au = L.au_regression(aus_pred[:n], real_aus, per_batch=w.au_per_batch)
    gp = L.gradient_penalty(critic_plain.patch_map, real, fake, alpha)
    total = w.adv * adv + w.au * au + w.gp * gp
    return total, {"d_adv": adv, "d_au": au, "d_gp": gp, "d_total": total}


def generator_loss(cycle: nn.Module, critic_plain: Critic, real: torch.Tensor, real_aus: torch.Tensor,
                   target_aus: torch.Tensor, w: L.LossWeights) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """G's total loss and its terms; ``cycle`` (a ``GeneratorCycle``) may be DDP-wrapped."""
    fake, mask, rec, mask_rec = cycle(real, real_aus, target_aus)
    fake_map, fake_aus = critic_plain(fake)
    adv = L.wasserstein_generator(fake_map)
    au = L.au_regression(fake_aus, target_aus, per_batch=w.au_per_batch)
    cyc = L.cycle_l1(rec, real)
    mask_term = L.mask_magnitude(mask) + L.mask_magnitude(mask_rec)
    tv = L.mask_total_variation(mask, w.tv_kind) + L.mask_total_variation(mask_rec, w.tv_kind)
    total = w.adv * adv + w.au * au + w.cyc * cyc + w.mask * mask_term + w.tv * tv
    return total, {"g_adv": adv, "g_au": au, "g_cyc": cyc, "g_mask": mask_term, "g_tv": tv, "g_total": total}


@dataclass
class Networks:
    """The plain networks and the modules the steps call (DDP-wrapped under torchrun)."""

    generator: nn.Module
    critic: Critic
    cycle: nn.Module  # GeneratorCycle(generator), maybe wrapped
    critic_step: nn.Module  # critic, maybe wrapped


def train_iteration(nets: Networks, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
                    real: torch.Tensor, real_aus: torch.Tensor, target_aus: torch.Tensor, alpha: torch.Tensor,
                    weights: L.LossWeights, *, train_generator: bool, amp: bool = False) -> dict[str, torch.Tensor]:
    """One critic update and, if ``train_generator``, one generator update; returns every loss term."""
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if amp else nullcontext
    with autocast():
        with torch.no_grad():
            fake, _, _ = generate(nets.generator, real, target_aus)
        d_total, terms = critic_loss(nets.critic_step, nets.critic, real, fake, real_aus, alpha, weights)
    opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    opt_d.step()
    if train_generator:
        with _frozen(nets.critic), autocast():
            g_total, g_terms = generator_loss(nets.cycle, nets.critic, real, real_aus, target_aus, weights)
        opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        opt_g.step()
        terms = {**terms, **g_terms}
    return terms


@contextmanager
def _frozen(module: nn.Module):
    """No parameter gradients for ``module`` inside the block (the critic during G's step)."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class _StopFlag:
    """Set by SIGINT/SIGTERM so that the run stops after the current iteration, saving its state."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.stop:  # second interrupt: give up at once
            raise KeyboardInterrupt
        self.stop = True
        log.warning("interrupt received: stopping after this iteration and saving the training state")

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _prepare_run_dir(config: TrainConfig, resume: bool, ctx: DistContext) -> Path:
    run = Path(config.out)
    state_path = run / STATE_NAME
    config_path = run / CONFIG_NAME
    if resume:
        if not state_path.is_file() or not config_path.is_file():
            raise ConfigError(f"--resume: {run} holds no training state ({STATE_NAME} and {CONFIG_NAME})",
                              path=run, hint="start the run without --resume, or point --out at the run folder")
        saved = TrainConfig.from_dict(json.loads(config_path.read_text()))
        diffs = config_differences(saved, config)
        if diffs:
            raise ConfigError("--resume with options that change the run: " + "; ".join(diffs), path=run,
                              hint="resume with the run's original options (see its config.json)")
    elif state_path.exists():
        raise ConfigError(f"{run} already holds a training run", path=run,
                          hint="pass --resume to continue it, or choose another --out")
    if ctx.is_main:
        run.mkdir(parents=True, exist_ok=True)
        for folder in (run, run / "samples", run / CACHE_DIR):
            if folder.is_dir():
                remove_stale_temp_files(folder)
        if not resume:
            atomic_write_json(config_path, config.to_dict())
            atomic_write_json(run / "environment.json", environment_info())
    return run


def _load_data(config: TrainConfig, run: Path, ctx: DistContext, callbacks: Callbacks) -> tuple[FaceAuData, Any]:
    """Rank 0 builds the face cache; the other ranks wait, then open the same file."""
    faces = collect_labelled_faces(config.data, config.labels)
    cache_dir = run / CACHE_DIR
    if ctx.is_main:
        array_path, faces = build_face_cache(faces, cache_dir, size=config.image_size, crop=config.crop,
                                             progress=callbacks.on_data)
    barrier(ctx)
    if not ctx.is_main:
        array_path, faces = build_face_cache(faces, cache_dir, size=config.image_size, crop=config.crop)
    array = np.load(array_path, mmap_mode="r")
    data = FaceAuData(array, faces.aus, flip=config.flip, aus_noise=config.aus_noise)
    if ctx.is_main:
        atomic_write_json(run / "data.json", {
            "root": str(faces.root), "usable": len(faces), "label_source": faces.label_source,
            "skipped": dict(faces.skipped), "skipped_examples": faces.examples, "cache": array_path.name,
        })
    return data, faces


def _sampler(n: int, config: TrainConfig, ctx: DistContext):
    from torch.utils.data import DistributedSampler

    return DistributedSampler(range(n), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                              seed=derive_seed(config.seed, "gan", "order") % 2**62, drop_last=True)


def _as_row(values: dict[str, torch.Tensor], ctx: DistContext) -> dict[str, float]:
    names = list(values)
    vec = torch.stack([values[k].detach().float().reshape(()) for k in names])
    vec = mean_across_ranks(vec, ctx).cpu().tolist()
    return dict(zip(names, vec))


def train(config: TrainConfig, *, resume: bool = False, callbacks: Callbacks | None = None) -> TrainResult:
    """Train (or continue) a GANimation generator + critic; see the module docstring."""
    callbacks = callbacks or Callbacks()
    ctx = init_distributed(config.device)
    try:
        return _train(config, resume, callbacks, ctx)
    finally:
        shutdown(ctx)


def _train(config: TrainConfig, resume: bool, callbacks: Callbacks, ctx: DistContext) -> TrainResult:
    device = ctx.device
    if config.amp and device.type != "cuda":
        raise ConfigError(f"--amp needs a CUDA device (bf16 autocast), not {device}",
                          hint="drop --amp on the CPU: reduced precision there is far slower")
    main = ctx.is_main
    run = _prepare_run_dir(config, resume, ctx)
    barrier(ctx)
    data, faces = _load_data(config, run, ctx, callbacks)
    sampler = _sampler(len(data), config, ctx)
    iters_per_epoch = len(sampler) // config.batch_size
    if iters_per_epoch < 1:
        raise DataError(f"{len(data)} usable faces are fewer than one batch of {config.batch_size}"
                        + (f" per process ({ctx.world_size} processes)" if ctx.distributed else ""),
                        path=config.data, hint="lower --batch-size or add faces")
    schedule = Schedule(config.epochs, config.decay_epochs, iters_per_epoch, config.critic_steps)
    weights = config.weights

    generator, critic = build_networks(config)
    generator.to(device)
    critic.to(device)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=(config.beta1, config.beta2))
    opt_d = torch.optim.Adam(critic.parameters(), lr=config.lr_d, betas=(config.beta1, config.beta2))

    start = 0
    if resume:
        state = load_state(run / STATE_NAME)
        if state["config_hash"] != config.content_hash():
            raise ConfigError("the training state belongs to another configuration", path=run / STATE_NAME)
        generator.load_state_dict(state["generator"])
        critic.load_state_dict(state["critic"])
        opt_g.load_state_dict(state["opt_g"])
        opt_d.load_state_dict(state["opt_d"])
        from .checkpoint import restore_rng

        restore_rng(state["rng"])
        start = int(state["iteration"])
        log.info("resuming %s at iteration %d of %d", run, start, schedule.total_iters)

    cycle: nn.Module = GeneratorCycle(generator)
    critic_step_module: nn.Module = critic
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        cycle = DDP(cycle, device_ids=ids)
        critic_step_module = DDP(critic, device_ids=ids)
    nets = Networks(generator, critic, cycle, critic_step_module)

    losslog = LossLog(run / "losses.csv", resume_from=start) if main else None
    sample_faces = np.asarray(data.faces[np.sort(numpy_rng(config.seed, "gan", "grid-faces").choice(
        len(data), size=min(config.sample_faces, len(data)), replace=False))])
    sample_targets = data.aus[numpy_rng(config.seed, "gan", "grid-targets").choice(len(data), size=4)]
    if main and callbacks.on_start:
        callbacks.on_start(start, schedule.total_iters)

    files: dict[str, Path] = {}
    timing = {"data_s": 0.0, "step_s": 0.0, "iterations": 0}
    done = start
    stopped = False
    last_plot = time.monotonic()
    n = config.batch_size

    def save(next_iteration: int, epoch: int) -> None:
        if main:
            files["state"] = save_state(run / STATE_NAME, generator=generator, critic=critic, opt_g=opt_g,
                                        opt_d=opt_d, epoch=epoch, iteration=next_iteration,
                                        config_hash=config.content_hash())

    try:
        with _StopFlag() as flag:
            for epoch in range(start // iters_per_epoch, config.epochs):
                sampler.set_epoch(epoch)
                order = list(sampler)
                for k in range(iters_per_epoch):
                    iteration = epoch * iters_per_epoch + k
                    if iteration < start:
                        continue
                    t0 = time.perf_counter()
                    batch = data.batch(order[k * n:(k + 1) * n], numpy_rng(config.seed, "gan", "batch", iteration, ctx.rank))
                    real = batch.real.to(device, non_blocking=True)
                    real_aus = batch.real_aus.to(device, non_blocking=True)
                    target_aus = batch.target_aus.to(device, non_blocking=True)
                    alpha = torch.rand(n, generator=torch_generator(config.seed, "gan", "gp", iteration, ctx.rank)).to(device)
                    t1 = time.perf_counter()

                    factor = schedule.lr_factor(iteration)
                    set_lr(opt_g, config.lr_g * factor)
                    set_lr(opt_d, config.lr_d * factor)
                    terms = train_iteration(nets, opt_g, opt_d, real, real_aus, target_aus, alpha, weights,
                                            train_generator=schedule.trains_generator(iteration), amp=config.amp)
                    row = _as_row(terms, ctx)
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                    t2 = time.perf_counter()
                    timing["data_s"] += t1 - t0
                    timing["step_s"] += t2 - t0
                    timing["iterations"] += 1

                    row.update(iteration=iteration, epoch=epoch + 1, lr_g=config.lr_g * factor, lr_d=config.lr_d * factor)
                    if main:
                        losslog.write(row)
                        if callbacks.on_iteration:
                            callbacks.on_iteration(iteration, row)
                    if not all(np.isfinite(v) for k, v in row.items() if isinstance(v, float)):
                        raise DataError(f"training diverged at iteration {iteration}: a loss is not finite "
                                        f"({', '.join(f'{k}={v:.3g}' for k, v in row.items() if isinstance(v, float))})",
                                        path=run, hint="lower the learning rate or check the AU labels' scale")

                    last_of_epoch = k == iters_per_epoch - 1
                    done = iteration + 1
                    stop = broadcast_flag(flag.stop, ctx) or (config.stop_after is not None and done >= config.stop_after)
                    if main and (stop or done == schedule.total_iters or
                                 (last_of_epoch and time.monotonic() - last_plot >= config.plot_every_s)):
                        losslog.flush()
                        files["plot"] = plot_losses(run / "losses.csv", run / "losses.png")
                        last_plot = time.monotonic()
                    if last_of_epoch:
                        assert_in_sync({"generator": generator, "critic": critic}, ctx)
                        files.update(_end_epoch(epoch + 1, run, config, generator, critic, sample_faces,
                                                sample_targets, device, main, callbacks))
                    if last_of_epoch or stop or done % config.save_every == 0:
                        save(done, epoch + 1 if last_of_epoch else epoch)
                    if stop:
                        stopped = done < schedule.total_iters
                        break
                if stopped:
                    break
                barrier(ctx)
    finally:
        if losslog is not None:
            losslog.close()
    barrier(ctx)
    return TrainResult(run_dir=run, iteration=done, total_iterations=schedule.total_iters,
                       epochs_completed=done // iters_per_epoch, stopped_early=stopped, files=files,
                       data_summary=faces.summary(), timing=timing)


def _end_epoch(epoch: int, run: Path, config: TrainConfig, generator: nn.Module, critic: Critic,
               sample_faces: np.ndarray, sample_targets: np.ndarray, device: torch.device, main: bool,
               callbacks: Callbacks) -> dict[str, Path]:
    """Epoch end on rank 0: weights in the dialect's naming and the sample grid."""
    if not main:
        return {}
    gen_path, dis_path = save_weights(generator, critic, run, config.dialect, epoch)
    grid = write_png(run / "samples" / f"epoch_{epoch:03d}.png",
                     epoch_grid(generator, sample_faces, sample_targets, device))
    paths = {"generator": gen_path, "critic": dis_path, "grid": grid}
    if callbacks.on_epoch:
        callbacks.on_epoch(epoch, paths)
    return paths
