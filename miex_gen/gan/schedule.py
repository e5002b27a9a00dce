"""Learning-rate schedule and critic:generator cadence (GANIMATION.md §7.3), with the off-by-ones fixed.

Both implementations mean "constant for ``epochs - decay_epochs`` epochs, then linear decay to
0 over the last ``decay_epochs``", and both miss by one epoch, in opposite directions:

* official: after each epoch i > 20 it subtracts lr₀/10, so epochs 1–21 run at lr₀ and epochs
  22–30 at 0.9…0.1·lr₀ (the decay starts one epoch late and never reaches 0);
* replicate: ``LambdaLR`` with factor 1 − max(0, k + 1 + 1 − niter)/(niter_decay + 1), so epochs
  1–19 run at lr₀ and 20–30 at 10/11…0/11·lr₀ (one epoch early, and the last epoch trains at 0).

miex: epochs 1…(epochs − decay_epochs) run at exactly lr₀; then the factor falls linearly
*per iteration*: over the ``N`` decay iterations, iteration k (0-based) uses 1 − k/N. So the
first decay iteration still uses lr₀, every iteration trains with a non-zero rate, and the rate
would reach 0 right after the last one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Schedule:
    """Iteration-level schedule: ``iters_per_epoch`` critic steps per epoch."""

    epochs: int
    decay_epochs: int
    iters_per_epoch: int
    critic_steps_per_generator: int = 5

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if not 0 <= self.decay_epochs <= self.epochs:
            raise ConfigError(f"decay epochs must lie in 0..{self.epochs}, got {self.decay_epochs}",
                              hint="GANimation uses 30 epochs with the last 10 decaying")
        if self.iters_per_epoch < 1:
            raise ConfigError(f"an epoch must have at least one iteration, got {self.iters_per_epoch}")
        if self.critic_steps_per_generator < 1:
            raise ConfigError("critic steps per generator step must be >= 1")

    @property
    def total_iters(self) -> int:
        return self.epochs * self.iters_per_epoch

    def lr_factor(self, iteration: int) -> float:
        """Multiplier of lr₀ for the global (0-based) iteration ``iteration``."""
        decay_start = (self.epochs - self.decay_epochs) * self.iters_per_epoch
        if iteration < decay_start or self.decay_epochs == 0:
            return 1.0
        decay_iters = self.decay_epochs * self.iters_per_epoch
        return max(0.0, 1.0 - (iteration - decay_start) / decay_iters)

    def trains_generator(self, iteration: int) -> bool:
        """True on the iterations that also update G: after every 5th critic step.

        ``(i + 1) mod 5 == 0`` as in the official code, so G always faces a critic that has
        just had its five updates (the replicate updates G at ``i mod 5 == 0``, i.e. after the
        critic's first step); the ratio is the same 5:1.
        """
        return (iteration + 1) % self.critic_steps_per_generator == 0


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
