"""Exact sums over binary states, shared by the energy models (exact log Z, exact log p(x))
and the metrics that check AIS against them. No registrations, no model or metric imports:
both sides depend on this module, never on each other for it."""
from __future__ import annotations

from typing import Callable

import torch


def bernoulli_log_partition(logits: torch.Tensor) -> torch.Tensor:
    """log sum_x exp(logits . x) over x in {0,1}^D = sum softplus(logits)."""
    return torch.nn.functional.softplus(logits.double()).sum()


def binary_states(start: int, stop: int, bits: int, device=None, dtype=torch.float64) -> torch.Tensor:
    """The binary expansions of the integers start..stop-1 as rows, shape (stop-start, bits)."""
    integers = torch.arange(start, stop, device=device, dtype=torch.int64)
    powers = torch.arange(bits, device=device, dtype=torch.int64)
    return ((integers.unsqueeze(1) >> powers) & 1).to(dtype)


def logsumexp_over_binary_states(
    log_f: Callable[[torch.Tensor], torch.Tensor],
    bits: int,
    device=None,
    chunk_size: int = 1 << 16,
    dtype=torch.float64,
) -> torch.Tensor:
    """log sum_{s in {0,1}^bits} exp(log_f(s)), enumerating in chunks of `chunk_size` states.

    ``log_f`` maps states (m, bits) to (m, ...) (e.g. (m, n) for n data points); the result
    has the trailing shape. Exact up to float64 rounding; 2^bits evaluations."""
    if bits > 30:
        raise ValueError(f"enumerating 2^{bits} states is infeasible")
    total = 1 << bits
    partials = []
    for start in range(0, total, chunk_size):
        states = binary_states(start, min(start + chunk_size, total), bits, device, dtype)
        partials.append(torch.logsumexp(log_f(states), dim=0))
    return torch.logsumexp(torch.stack(partials), dim=0)
