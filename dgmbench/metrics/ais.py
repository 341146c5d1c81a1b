"""Partition functions of energy-based models: annealed importance sampling (AIS), reverse
annealing (RAISE) and exact enumeration for tiny models.

**AIS** (Neal 2001; for RBMs Salakhutdinov & Murray 2008, "On the quantitative analysis of
deep belief networks", ICML). Intermediate distributions on a geometric path

    f_beta(x) = f_A(x)^(1 - beta) f_B(x)^beta,   0 = beta_0 < beta_1 < ... < beta_K = 1,

from a tractable base p_A (the "base-rate" model: independent visibles fitted to the
training data with a pseudocount) to the model f_B. With x_0 ~ p_A and x_k drawn by an
MCMC transition T_k that leaves p_{beta_k} invariant,

    w = prod_{k=1}^{K} f_{beta_k}(x_{k-1}) / f_{beta_{k-1}}(x_{k-1}),   E[w] = Z_B / Z_A,

so Z_hat = Z_A mean(w). log Z_hat is biased low in expectation (Jensen), hence the
AIS-based NLL estimate  -mean log p~(x) + log Z_hat  tends to be optimistic (too low).

**RAISE** (Burda, Grosse & Salakhutdinov 2015, "Accurate and conservative estimates of MRF
log-likelihood using reverse annealing", AISTATS). The forward annealing chain itself is a
generative model p_fwd(x_0..x_K) = p_A(x_0) prod_k T_k(x_k | x_{k-1}). Its likelihood of a
test point v is estimated by importance sampling with the *reverse* chain started at the
data, x_K ~ p_B(x | v), x_{k-1} ~ T_k(. | x_k) (T_k reversible); the weight

    w = f_B(v) / Z_A * prod_{k=1}^{K} f_{beta_{k-1}}(x_{k-1}) / f_{beta_k}(x_{k-1})

has E[w] = p_fwd(v), so mean log w is a stochastic lower bound on log p_fwd(v) ~ log p_B(v):
a conservative estimate. AIS and RAISE together bracket the test log-likelihood.

**Speed.** On CPU the chains are annealed in two groups, each with its own generator seeded
from the caller's (``CHAIN_GROUPS``), which run concurrently when torch has two threads; the
split does not depend on the thread count, so a seed gives the same random draws at any; the
log-weights then agree to the rounding of the float32 products (measured: 4e-6 nats of ~800).

**Exact** log Z by enumerating all 2^n binary states (in chunks, so memory stays bounded),
for models whose smaller layer has up to ~25 units.

Metrics registered here (settings via ``EvalContext.settings``):

* ``ais_nll``   -mean log p~(x_test) + log Z_hat; kind "estimate"; protocol records chains,
                temperatures, base pseudocount, log Z_hat and log(Z_hat +- 3 sigma), and for
                discrete data the certain lower bound log sum_{distinct train v} p~(v) <= log Z
                with a flag when AIS falls below it (AIS missed modes). Settings
                ais_chains (100), ais_temperatures (14,500; quick 1,000), ais_pseudocount (0.05).
* ``raise_nll`` -mean RAISE estimate of log p(x_test); kind "bound" (stochastic upper bound
                on the NLL of the annealing model, in expectation). Settings raise_temperatures
                (1,000; quick 300), raise_chains (1 per example), raise_examples (1,000: the
                whole test split when smaller, else a seeded subset, recorded).
* ``exact_nll`` emits metric ``nll`` (kind "exact") for energy-based models small enough
                to enumerate (``exact_log_partition_feasible()``), or with an enumerable
                ``exact_log_prob`` (``exact_log_prob_feasible()``, e.g. a tiny DBN).
* ``vlb_nll``   negated variational lower bound with log Z of the top/whole model from AIS
                (or exact when tiny), for DBN-like models implementing
                :class:`VariationalBoundModel`; kind "estimate" (an estimate of a bound).
"""
from __future__ import annotations

import concurrent.futures
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import torch

from dgmbench.enumeration import bernoulli_log_partition, binary_states, logsumexp_over_binary_states  # noqa: F401 (re-exported)
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, register_metric
from dgmbench.models.base import EnergyBased

STANDARD_TEMPERATURES = 14_500
DEFAULT_CHAINS = 100
QUICK_TEMPERATURES = 1_000
DEFAULT_PSEUDOCOUNT = 0.05

# -e settings of the forward AIS run (read by ais_nll, vlb_nll and the DBM's dbm_vlb)
AIS_SETTINGS = {
    "ais_chains": Setting(int, "AIS chains (100)", minimum=1),
    "ais_temperatures": Setting(int, "AIS inverse temperatures (14500; quick 1000)", minimum=3),
    "ais_pseudocount": Setting(float, "pseudocount of the base-rate model (0.05)", greater_than=0),
}


# --------------------------------------------------------------------------- schedules
def standard_schedule(device=None) -> torch.Tensor:
    """The standard 14,500 inverse temperatures (float64): 500 evenly spaced on [0, 0.5),
    4,000 on [0.5, 0.9), 10,000 on [0.9, 1.0] (Salakhutdinov & Murray 2008); first 0, last exactly 1."""
    return schedule(STANDARD_TEMPERATURES, device)


def schedule(num_temperatures: int, device=None) -> torch.Tensor:
    """The standard schedule's shape with `num_temperatures` points (same 500 : 4,000 : 10,000
    proportions on [0, .5), [.5, .9), [.9, 1]); ``schedule(14500)`` is the standard one."""
    if num_temperatures < 3:
        raise ValueError(f"an AIS schedule needs at least 3 temperatures, got {num_temperatures}")
    first = max(1, round(num_temperatures * 500 / STANDARD_TEMPERATURES))
    second = max(1, round(num_temperatures * 4_000 / STANDARD_TEMPERATURES))
    third = num_temperatures - first - second

    def half_open(start, stop, n):
        return torch.linspace(start, stop, n + 1, dtype=torch.float64)[:-1]

    betas = torch.cat(
        [
            half_open(0.0, 0.5, first),
            half_open(0.5, 0.9, second),
            torch.linspace(0.9, 1.0, third, dtype=torch.float64),
        ]
    )
    betas[-1] = 1.0
    return betas.to(device) if device is not None else betas


# --------------------------------------------------------------------------- the path
@runtime_checkable
class AnnealingPath(Protocol):
    """A sequence of distributions p_beta from a tractable base (beta=0) to the model (beta=1).

    ``log_f(state, 1.0)`` must be normalised like the model's ``unnormalized_log_prob``
    (same Z), so that AIS's log Z turns log p~(x) into log p(x). A state may be a tensor or
    a tuple of tensors (e.g. visibles plus cached hidden pre-activations)."""

    log_z_base: float  # exact log Z of the beta=0 distribution

    def sample_base(self, n: int, generator: torch.Generator | None) -> Any:
        """n exact samples from the beta=0 distribution."""

    def log_f(self, state: Any, beta: float) -> torch.Tensor:
        """(n,) float64: log unnormalised density of p_beta at state."""

    def transition(self, state: Any, beta: float, generator: torch.Generator | None) -> Any:
        """One MCMC step leaving p_beta invariant (reversible, for RAISE)."""

    # Optional, used by run_ais / run_raise when present: the whole loop in one method, so a
    # path can share work between consecutive temperatures (e.g. the RBM's
    # SummedOutLayerPath). Must equal, in distribution, the generic loop:
    #   anneal(x, betas, g, transition_first) -> (x_final, sum_j log f_{b_j}(x) - log f_{b_{j-1}}(x))
    # with x <- transition(x, b_j) after every increment but the last, and first
    # x <- transition(x, b_0) when transition_first (RAISE, betas descending).


@runtime_checkable
class ReversiblePath(AnnealingPath, Protocol):
    """A path that RAISE can run backwards from data."""

    def data_state(self, x: torch.Tensor, generator: torch.Generator | None) -> Any:
        """States drawn from p_1(state | x) for data x of shape (n, D); the identity
        (plus caches) when the state is the visible vector itself."""


@dataclass
class AISResult:
    log_z: float  # log of the mean importance weight + log_z_base
    log_z_minus_3sd: float  # log(Z_hat - 3 sigma_hat); -inf if nonpositive
    log_z_plus_3sd: float  # log(Z_hat + 3 sigma_hat)
    log_weights: torch.Tensor  # (chains,) float64, including log_z_base
    chains: int
    temperatures: int

    def protocol(self) -> dict:
        return {
            "ais_chains": self.chains,
            "ais_temperatures": self.temperatures,
            "log_z": self.log_z,
            "log_z_minus_3sd": self.log_z_minus_3sd,
            "log_z_plus_3sd": self.log_z_plus_3sd,
        }


def summarize_log_weights(log_weights: torch.Tensor, temperatures: int) -> AISResult:
    """log Z_hat and log(Z_hat +- 3 sigma) from log importance weights (log_z_base included).

    sigma_hat is the standard error of the mean weight, computed in linear space after
    scaling all weights by the largest so that nothing overflows."""
    log_weights = log_weights.double()
    chains = log_weights.numel()
    shift = log_weights.max()
    scaled = torch.exp(log_weights - shift)
    mean = scaled.mean()
    std_error = scaled.std(unbiased=True) / math.sqrt(chains) if chains > 1 else torch.zeros(())
    lower = mean - 3 * std_error
    return AISResult(
        log_z=float(shift + mean.log()),
        log_z_minus_3sd=float(shift + lower.log()) if lower > 0 else -math.inf,
        log_z_plus_3sd=float(shift + (mean + 3 * std_error).log()),
        log_weights=log_weights,
        chains=chains,
        temperatures=temperatures,
    )


# --------------------------------------------------------------------------- the loop
# On CPU the chains are annealed in CHAIN_GROUPS independent groups, each with its own
# generator seeded from the caller's, so that two cores can each run one group: a
# temperature's matrix products ((100, 784) x (784, 500)) are too small for intra-op
# threads to pay, and the CPU random-number generator is serial. The split depends only on
# the device and the number of chains, never on the thread count, so a seed gives the same
# random draws at any thread count (groups run one after the other at one thread, each with
# one intra-op thread; a worker thread's matrix kernels may round differently, ~1e-8 relative). CUDA runs all chains as one batch with the caller's generator.
CHAIN_GROUPS = 2
CONCURRENT_MIN_ELEMENTS = 1 << 14  # state elements per group below which threads cost more than they save


def _state_tensors(state) -> tuple[torch.Tensor, ...]:
    return (state,) if isinstance(state, torch.Tensor) else tuple(state)


def _split_state(state, sizes: list[int]) -> list:
    """A state (tensor, or tuple of tensors with chains first) cut into groups of chains (views)."""
    if isinstance(state, torch.Tensor):
        return list(state.split(sizes))
    parts = [tensor.split(sizes) for tensor in state]
    return [type(state)(part[group] for part in parts) for group in range(len(sizes))]


def _group_generators(generator: torch.Generator | None, groups: int, device: torch.device) -> list:
    """One generator per group, seeded by draws from the caller's (or torch's global) generator."""
    seeds = torch.randint(0, 2**62, (groups,), generator=generator, device=generator.device if generator else "cpu")
    return [torch.Generator(device=device).manual_seed(int(seed)) for seed in seeds]


def _generic_anneal(path: AnnealingPath, state, betas: list[float], generator, transition_first: bool):
    """AnnealingPath.anneal from log_f and transition: one log_f pair per temperature."""
    if transition_first:
        state = path.transition(state, betas[0], generator)
    log_w = path.log_f(state, betas[0]).double().neg()
    for beta in betas[1:-1]:
        # log f_k(x_{k-1}) - log f_{k-1}(x_{k-1}): one log_f per temperature, because the
        # subtracted term of the next step is evaluated at the same state and beta.
        log_w += path.log_f(state, beta).double()
        state = path.transition(state, beta, generator)
        log_w -= path.log_f(state, beta).double()
    return state, log_w + path.log_f(state, betas[-1]).double()


def anneal(path: AnnealingPath, state, betas: list[float], generator=None, transition_first: bool = False) -> torch.Tensor:
    """(chains,) float64: sum over consecutive temperatures of log f_{beta_j}(x) - log f_{beta_{j-1}}(x),
    x moved by the transition at beta_j after every increment but the last (and first at
    betas[0] when ``transition_first``), by the path's fused ``anneal`` when it has one; on
    CPU in CHAIN_GROUPS groups of chains (see CHAIN_GROUPS), concurrently when torch has
    the threads for it."""
    fused = getattr(path, "anneal", None)
    run = fused if callable(fused) else functools.partial(_generic_anneal, path)
    first = _state_tensors(state)[0]
    chains, device = first.shape[0], first.device
    groups = CHAIN_GROUPS if device.type == "cpu" and chains >= CHAIN_GROUPS else 1
    if groups == 1:
        return run(state, betas, generator, transition_first=transition_first)[1].double()
    sizes = [chains // groups + (group < chains % groups) for group in range(groups)]
    parts = _split_state(state, sizes)
    generators = _group_generators(generator, groups, device)
    threads = torch.get_num_threads()
    group_elements = sum(tensor.numel() for tensor in _state_tensors(state)) // groups
    workers = min(groups, threads) if group_elements >= CONCURRENT_MIN_ELEMENTS else 1

    def run_group(group: int) -> torch.Tensor:
        with torch.no_grad():
            return run(parts[group], betas, generators[group], transition_first=transition_first)[1].double()

    # Each group runs with threads // groups intra-op threads, however the groups are
    # scheduled (one thread at 1 or 2 threads: the same arithmetic up to the kernels' rounding).
    torch.set_num_threads(max(1, threads // groups))
    try:
        if workers == 1:
            log_weights = [run_group(group) for group in range(groups)]
        else:
            # fresh threads each time: torch sets a thread's OpenMP pool size on its first parallel op
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                log_weights = list(pool.map(run_group, range(groups)))
    finally:
        torch.set_num_threads(threads)
    return torch.cat(log_weights)


@torch.no_grad()
def run_ais(
    path: AnnealingPath,
    betas: torch.Tensor,
    chains: int = DEFAULT_CHAINS,
    generator: torch.Generator | None = None,
) -> AISResult:
    """Forward AIS; all chains of a group vectorized as one tensor batch (see ``anneal``);
    weights accumulated in float64."""
    betas = [float(b) for b in betas.double().cpu()]
    if betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError("an AIS schedule must start at beta=0 and end at beta=1")
    state = path.sample_base(chains, generator)
    log_w = anneal(path, state, betas, generator)
    return summarize_log_weights(log_w + path.log_z_base, len(betas))


@torch.no_grad()
def run_raise(
    path: ReversiblePath,
    x: torch.Tensor,
    log_f_data: torch.Tensor,
    betas: torch.Tensor,
    chains_per_example: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """RAISE estimates of log p(x), shape (n,): log of the mean reverse-annealing weight over
    `chains_per_example` chains per example. ``log_f_data`` is log p~(x) (the model's
    ``unnormalized_log_prob``, normalised like ``path.log_f(., 1)``); unused (may be None)
    for a path with ``raise_start(x, generator) -> (state, log_w0)``, which starts the
    reverse chain from an approximate posterior and accounts for it in log_w0."""
    betas = [float(b) for b in betas.double().cpu()]
    if betas[0] != 0.0 or betas[-1] != 1.0:
        raise ValueError("a RAISE schedule must start at beta=0 and end at beta=1")
    n = x.shape[0]
    x = x.repeat_interleave(chains_per_example, dim=0)
    if callable(getattr(path, "raise_start", None)):
        # a path whose state holds latents with an intractable posterior draws them from an
        # approximation q and returns log f_1(state) - log q - log Z_0 (e.g. the DBM's)
        state, log_w = path.raise_start(x, generator)
        log_w = log_w.double()
    else:
        state = path.data_state(x, generator)
        log_w = log_f_data.double().repeat_interleave(chains_per_example) - path.log_z_base
    # the reverse chain: a transition at beta_k, then log f_{k-1}(x) - log f_k(x), k = K..1
    log_w = log_w + anneal(path, state, betas[::-1], generator, transition_first=True)
    log_w = log_w.view(n, chains_per_example)
    return torch.logsumexp(log_w, dim=1) - math.log(chains_per_example)


# --------------------------------------------------------------------------- base rates
def base_rate(train: torch.Tensor, value_type: str, pseudocount: float = DEFAULT_PSEUDOCOUNT) -> torch.Tensor:
    """The base model's visible statistics, shape (D,).

    Binary data: smoothed marginal probabilities (mean + a) / (1 + 2a), a pseudocount of `a`
    per example on each outcome so no probability is 0 or 1 (Salakhutdinov & Murray 2008 add
    5 pseudo-counts per 100-example batch). Other data: the per-dimension training mean
    (a model's path decides what to do with it, e.g. the mean of a Gaussian base)."""
    flat = train.flatten(1).double()
    if value_type == "binary":
        return (flat.mean(0) + pseudocount) / (1 + 2 * pseudocount)
    return flat.mean(0)


# --------------------------------------------------------------------------- metrics
def _device_generator(device: torch.device, seed: int) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


@torch.no_grad()
def _unnormalized_log_probs(model, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    device = model.device
    return torch.cat(
        [model.unnormalized_log_prob(batch.to(device)).double().cpu() for batch in x.split(batch_size)]
    )


def _ais_for(model, base_data: torch.Tensor, value_type: str, ctx: EvalContext, make_path: Callable):
    """Run AIS on ``make_path(base rate of base_data)`` with the context's settings."""
    chains = ctx.setting("ais_chains", DEFAULT_CHAINS)
    temperatures = ctx.setting("ais_temperatures", QUICK_TEMPERATURES if ctx.quick else STANDARD_TEMPERATURES)
    pseudocount = ctx.setting("ais_pseudocount", DEFAULT_PSEUDOCOUNT)
    device = model.device
    path = make_path(base_rate(base_data, value_type, pseudocount).to(device))
    result = run_ais(path, schedule(temperatures), chains, _device_generator(device, ctx.seed * 1_000_003 + 17))
    protocol = {**result.protocol(), "ais_base_pseudocount": pseudocount, "ais_schedule": "salakhutdinov_murray_2008"}
    return result, protocol


def _mean_and_stderr(values: torch.Tensor) -> tuple[float, float | None]:
    n = values.numel()
    return float(values.mean()), (float(values.std(unbiased=True) / math.sqrt(n)) if n > 1 else None)


class AISNegativeLogLikelihood:
    """-mean log p~(x_test) + log Z_hat (AIS). Optimistic in expectation: log Z_hat is biased low."""

    name = "ais_nll"
    settings = AIS_SETTINGS

    def applies(self, model, dataset) -> bool:
        return isinstance(model, EnergyBased) and callable(getattr(model, "annealing_path", None))

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        train = dataset.split("train")
        result, protocol = _ais_for(model, train, dataset.info.value_type, ctx, model.annealing_path)
        log_p_tilde = _unnormalized_log_probs(model, dataset.split(ctx.split), ctx.batch_size)
        mean_log_p_tilde, stderr = _mean_and_stderr(log_p_tilde)
        protocol["nll_at_log_z_minus_3sd"] = result.log_z_minus_3sd - mean_log_p_tilde
        protocol["nll_at_log_z_plus_3sd"] = result.log_z_plus_3sd - mean_log_p_tilde
        # A certain lower bound on log Z: the sum of p~ over the (distinct) training points is
        # part of the sum over all states. AIS below it has missed mass (e.g. a model that
        # collapsed onto a few training images), and its NLL is then certainly too low.
        if dataset.info.value_type != "continuous":
            unique_train = torch.unique(train.flatten(1), dim=0).view(-1, *train.shape[1:])
            bound = float(torch.logsumexp(_unnormalized_log_probs(model, unique_train, ctx.batch_size), 0))
            protocol["log_z_lower_bound_from_train"] = bound
            protocol["ais_log_z_below_certain_bound"] = result.log_z < bound
        return [
            MetricValue(
                name=self.name,
                value=result.log_z - mean_log_p_tilde,
                unit="nats",
                n=log_p_tilde.numel(),
                stderr=stderr,
                kind="estimate",
                protocol=protocol,
            )
        ]


class RAISENegativeLogLikelihood:
    """-mean RAISE log p(x) over (a subset of) the test split: conservative (too high) in expectation."""

    name = "raise_nll"
    settings = {
        "raise_temperatures": Setting(int, "RAISE inverse temperatures (1000; quick 300)", minimum=3),
        "raise_chains": Setting(int, "reverse chains per test example (1)", minimum=1),
        "raise_examples": Setting(int, "test examples scored (1000; a seeded subset when the split is larger)",
                                  minimum=1),
        "ais_pseudocount": AIS_SETTINGS["ais_pseudocount"],
    }

    def applies(self, model, dataset) -> bool:
        return isinstance(model, EnergyBased) and callable(getattr(model, "annealing_path", None))

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        temperatures = ctx.setting("raise_temperatures", 300 if ctx.quick else QUICK_TEMPERATURES)
        chains = ctx.setting("raise_chains", 1)
        # All of a small test split; a seeded subset of a large one (RAISE costs examples x
        # chains x temperatures chain steps). The protocol records which.
        max_examples = ctx.setting("raise_examples", 1000)
        pseudocount = ctx.setting("ais_pseudocount", DEFAULT_PSEUDOCOUNT)
        device = model.device
        base = base_rate(dataset.split("train"), dataset.info.value_type, pseudocount).to(device)
        path = model.annealing_path(base)
        if not isinstance(path, ReversiblePath):
            return []
        test = dataset.split(ctx.split)
        # A fixed, seeded subset: RAISE costs examples x chains x temperatures chain steps.
        subset = torch.randperm(test.shape[0], generator=ctx.generator(23))[:max_examples]
        x = test[subset].flatten(1)
        generator = _device_generator(device, ctx.seed * 1_000_003 + 29)
        betas = schedule(temperatures)
        estimates = []
        for batch in x.split(max(1, ctx.batch_size // chains)):
            batch = batch.to(device)
            log_f_data = model.unnormalized_log_prob(batch.view(-1, *dataset.info.shape)).double()
            estimates.append(run_raise(path, batch, log_f_data, betas, chains, generator).cpu())
        log_p = torch.cat(estimates)
        mean_log_p, stderr = _mean_and_stderr(log_p)
        return [
            MetricValue(
                name=self.name,
                value=-mean_log_p,
                unit="nats",
                n=log_p.numel(),
                stderr=stderr,
                kind="bound",
                protocol={
                    "raise_temperatures": temperatures,
                    "raise_chains_per_example": chains,
                    "raise_examples": log_p.numel(),
                    "raise_whole_split": log_p.numel() == test.shape[0],
                    "raise_subset_seed": ctx.seed,
                    "ais_base_pseudocount": pseudocount,
                    "raise_schedule": "salakhutdinov_murray_2008 shape, reversed",
                    "note": "stochastic upper bound (in expectation) on the NLL of the annealing model",
                },
            )
        ]


class ExactNegativeLogLikelihood:
    """Exact NLL of a tiny energy-based model, emitted as ``nll``: log Z by enumeration
    (``exact_log_partition``), or the whole log p(x) by enumeration for models whose
    unnormalised density is itself a sum over latent layers (``exact_log_prob``, e.g. a DBN)."""

    name = "exact_nll"
    settings: dict = {}

    def applies(self, model, dataset) -> bool:
        if callable(getattr(model, "exact_log_prob", None)):
            return model.exact_log_prob_feasible()
        return (
            isinstance(model, EnergyBased)
            and callable(getattr(model, "exact_log_partition", None))
            and model.exact_log_partition_feasible()
        )

    @torch.no_grad()
    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        test = dataset.split(ctx.split)
        if callable(getattr(model, "exact_log_prob", None)):
            log_p = torch.cat(
                [model.exact_log_prob(batch.to(model.device)).double().cpu() for batch in test.split(ctx.batch_size)]
            )
            protocol = {"method": "enumeration of all latent states"}
        else:
            log_z = float(model.exact_log_partition())
            log_p = _unnormalized_log_probs(model, test, ctx.batch_size) - log_z
            protocol = {"log_z": log_z, "log_z_method": "enumeration"}
        mean_log_p, stderr = _mean_and_stderr(log_p)
        return [
            MetricValue(
                name="nll",
                value=-mean_log_p,
                unit="nats",
                n=log_p.numel(),
                stderr=stderr,
                kind="exact",
                protocol=protocol,
            )
        ]


class VariationalBoundModel(Protocol):
    """A model whose log-likelihood is bounded below by  B(x) - log Z  (DBN: Salakhutdinov &
    Murray 2008; DBM: mean-field bound), with Z the partition function of one EBM."""

    def bound_annealing_path(self, base: torch.Tensor) -> AnnealingPath:
        """The AIS path for the Z in the bound; `base` are base-rate statistics of that
        model's visible layer (for a DBN: the top RBM's input, from the training data)."""

    def bound_base_data(self, train: torch.Tensor) -> torch.Tensor:
        """The data whose base rate starts `bound_annealing_path` (e.g. h_{L-1} samples)."""

    def unnormalized_bound(self, x: torch.Tensor, samples: int) -> torch.Tensor:
        """(n,) float64: B(x), the bound plus log Z, estimated with `samples` draws from q."""

    def exact_bound_log_partition(self) -> float | None:
        """Exact log Z when small enough to enumerate, else None."""


class VariationalBoundNegativeLogLikelihood:
    """-(mean B(x_test) - log Z): an estimate of the negated variational bound (AIS for Z)."""

    name = "vlb_nll"
    settings = {**AIS_SETTINGS, "vlb_samples": Setting(int, "posterior samples of the bound (100; quick 10)", minimum=1)}

    def applies(self, model, dataset) -> bool:
        return callable(getattr(model, "unnormalized_bound", None)) and callable(
            getattr(model, "bound_annealing_path", None)
        )

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        device = model.device
        # q-samples use the global generator: seed it, on a fork that leaves the caller's state alone
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(ctx.seed)
            return self._evaluate(model, dataset, ctx)

    def _evaluate(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        samples = ctx.setting("vlb_samples", 10 if ctx.quick else 100)
        exact = model.exact_bound_log_partition()
        if exact is not None:
            log_z, protocol = float(exact), {"log_z": float(exact), "log_z_method": "enumeration"}
        else:
            with torch.no_grad():
                top_input = model.bound_base_data(dataset.split("train").to(model.device))
            result, protocol = _ais_for(model, top_input, "binary", ctx, model.bound_annealing_path)
            log_z = result.log_z
        test = dataset.split(ctx.split)
        bound = torch.cat(
            [model.unnormalized_bound(batch.to(model.device), samples).double().cpu() for batch in test.split(ctx.batch_size)]
        ) - log_z
        mean_bound, stderr = _mean_and_stderr(bound)
        method = "enumeration" if exact is not None else "AIS"
        protocol.update(
            {
                "vlb_q_samples": samples,
                "note": f"negated variational lower bound on log p(x), q-expectation by Monte Carlo, log Z by {method}",
            }
        )
        return [
            MetricValue(
                name=self.name,
                value=-mean_bound,
                unit="nats",
                n=bound.numel(),
                stderr=stderr,
                kind="estimate",
                protocol=protocol,
            )
        ]


register_metric(AISNegativeLogLikelihood())
register_metric(RAISENegativeLogLikelihood())
register_metric(ExactNegativeLogLikelihood())
register_metric(VariationalBoundNegativeLogLikelihood())
