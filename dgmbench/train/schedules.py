"""pylearn2's two per-update schedules, shared by the models that follow its released
configurations (the GAN of Goodfellow et al. 2014, pylearn2's VAE example):

    ExponentialDecay:  lr_t = max(min_lr, lr_0 / decay^t)
    MomentumAdjustor:  m_t  = m_0 + (m_final - m_0) * clip((t - start) / (end - start), 0, 1)

with t the number of updates done (pylearn2 ramps the momentum by epochs; the callers
convert)."""
from __future__ import annotations


def decayed_lr(base_lr: float, updates: int, lr_decay: float, min_lr: float) -> float:
    return max(min_lr, base_lr / lr_decay**updates)


def ramped_momentum(updates: int, momentum: float, final_momentum: float, ramp: tuple[int, int]) -> float:
    start, end = ramp
    progress = min(1.0, max(0.0, (updates - start) / (end - start)))
    return momentum + (final_momentum - momentum) * progress
