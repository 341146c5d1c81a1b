"""AIS, RAISE and exact enumeration against independent ground truths: brute-force sums over
all joint states, exact forward-chain marginals from transition matrices, and the exact
log Z of random and trained RBMs."""
import itertools
import math

import pytest
import torch

from dgmbench.data.base import load_dataset
from dgmbench.metrics.ais import (
    base_rate,
    logsumexp_over_binary_states,
    run_ais,
    run_raise,
    schedule,
    standard_schedule,
)
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.models.base import TrainConfig, build_model
from dgmbench.models.energy.rbm import BernoulliRBMLayer


def random_layer(visible, hidden, weight_std, seed=0):
    torch.manual_seed(seed)
    layer = BernoulliRBMLayer(visible, hidden, init_std=weight_std)
    with torch.no_grad():
        layer.visible_bias.normal_(0, 1)
        layer.hidden_bias.normal_(0, 1)
    return layer


def all_states(bits):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=bits)), dtype=torch.float64)


def brute_force_log_z(layer):
    """log sum over all (v, h) of exp(-E(v, h)), energies written out directly."""
    W, b, c = (p.detach().double() for p in (layer.weight, layer.visible_bias, layer.hidden_bias))
    v, h = all_states(layer.visible), all_states(layer.hidden)
    neg_energy = (v @ b)[:, None] + (h @ c)[None, :] + torch.einsum("ai,ij,bj->ab", v, W, h)
    return float(torch.logsumexp(neg_energy.flatten(), 0))


def test_standard_schedule():
    betas = standard_schedule()
    assert betas.dtype == torch.float64 and len(betas) == 14_500
    assert betas[0] == 0.0 and betas[-1] == 1.0
    assert torch.all(betas[1:] > betas[:-1])
    assert int((betas < 0.5).sum()) == 500
    assert int(((betas >= 0.5) & (betas < 0.9)).sum()) == 4_000
    assert int((betas >= 0.9).sum()) == 10_000
    short = schedule(1000)
    assert len(short) == 1000 and short[0] == 0.0 and short[-1] == 1.0
    assert torch.all(short[1:] > short[:-1])


def test_enumeration_matches_itertools_and_chunks():
    torch.manual_seed(0)
    bits = 9
    linear, quadratic = torch.randn(bits, dtype=torch.float64), torch.randn(bits, bits, dtype=torch.float64)

    def log_f(s):  # (m, bits) -> (m, 2): two functions at once, to check trailing shapes
        value = s @ linear + ((s @ quadratic) * s).sum(1)
        return torch.stack([value, 2 * value], 1)

    expected = torch.logsumexp(log_f(all_states(bits)), 0)
    got = logsumexp_over_binary_states(log_f, bits, chunk_size=37)  # ragged chunks
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("visible,hidden", [(6, 4), (4, 7)])  # enumerate either layer
def test_rbm_exact_log_partition_matches_joint_brute_force(visible, hidden):
    layer = random_layer(visible, hidden, weight_std=1.0)
    assert abs(layer.exact_log_partition(chunk_size=5) - brute_force_log_z(layer)) < 1e-10


def test_rbm_probabilities_sum_to_one():
    layer = random_layer(10, 5, weight_std=0.7)  # log Z enumerates h; the sum below runs over v
    log_z = layer.exact_log_partition()
    with torch.no_grad():
        log_p = -layer.free_energy_float64(all_states(10)) - log_z
    assert abs(float(torch.logsumexp(log_p, 0))) < 1e-10


def tiny_transition_matrices(layer, base_bias, betas):
    """Exact T_beta(v' | v) = sum_h p_beta(h | v) p_beta(v' | h) over all visible states."""
    W, b, c = (p.detach().double() for p in (layer.weight, layer.visible_bias, layer.hidden_bias))
    v, h = all_states(layer.visible), all_states(layer.hidden)

    def bernoulli_prob(states, logits):  # p(states | logits), rows of logits x rows of states
        return torch.exp(states @ logits.T - torch.nn.functional.softplus(logits).sum(1)).T

    matrices = []
    for beta in betas:
        p_h_given_v = bernoulli_prob(h, beta * (v @ W + c))  # (v, h)
        p_v_given_h = bernoulli_prob(v, (1 - beta) * base_bias + beta * (h @ W.T + b))  # (h, v')
        matrices.append(p_h_given_v @ p_v_given_h)
    return v, matrices


def test_ais_weights_are_unbiased_for_z_on_a_tiny_rbm():
    """E[w] = Z / Z_0 exactly, for any schedule: the mean weight over many chains matches the
    enumerated Z within its own standard error."""
    layer = random_layer(5, 3, weight_std=1.0)
    base = torch.sigmoid(torch.randn(5, dtype=torch.float64))
    result = run_ais(layer.annealing_path(base), schedule(8), chains=40_000, generator=torch.Generator().manual_seed(0))
    exact = layer.exact_log_partition()
    weights = torch.exp(result.log_weights - exact)  # E = 1
    assert abs(float(weights.mean()) - 1) < 4 * float(weights.std()) / math.sqrt(len(weights))
    assert result.log_z_minus_3sd < exact < result.log_z_plus_3sd


def test_raise_weights_are_unbiased_for_the_forward_chain_marginal():
    """E[w] = p_fwd(v), the marginal of the forward annealing chain p_0 T_1 ... T_K, computed
    exactly from transition matrices on a 4-visible RBM."""
    layer = random_layer(4, 3, weight_std=1.5, seed=1)
    base_probs = torch.full((4,), 0.3, dtype=torch.float64)
    path = layer.annealing_path(base_probs)
    betas = schedule(6)
    states, matrices = tiny_transition_matrices(layer, path.base_bias, betas[1:].tolist())
    p_fwd = torch.exp(states @ path.base_bias - torch.nn.functional.softplus(path.base_bias).sum())
    for matrix in matrices:
        p_fwd = p_fwd @ matrix
    x = states[[0, 5, 15]]
    chains = 30_000
    log_f_data = -layer.free_energy_float64(x)
    estimate = run_raise(path, x, log_f_data, betas, chains, torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.exp(estimate), p_fwd[[0, 5, 15]], rtol=0.03, atol=0)
    # and p_fwd is a (different) normalised distribution near the RBM's
    assert abs(float(p_fwd.sum()) - 1) < 1e-12


def assert_ais_close_to_exact(layer, base, temperatures, seed=0):
    exact = layer.exact_log_partition()
    result = run_ais(layer.annealing_path(base), schedule(temperatures), 100, torch.Generator().manual_seed(seed))
    assert abs(result.log_z - exact) < 0.1, (result.log_z, exact)
    assert result.log_z_minus_3sd <= exact <= result.log_z_plus_3sd, (result, exact)
    return result


def test_ais_matches_exact_log_z_random_784x16():
    layer = random_layer(784, 16, weight_std=0.1)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    assert_ais_close_to_exact(layer, base, temperatures=1000)


@pytest.mark.slow
def test_ais_matches_exact_log_z_random_784x20():
    layer = random_layer(784, 20, weight_std=0.1)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    assert_ais_close_to_exact(layer, base, temperatures=3000)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits/binary")


@pytest.fixture(scope="module")
def trained_digits_rbm(digits):
    torch.manual_seed(0)
    model = build_model("rbm", digits.info, hidden=16, persistent=True, pcd_chains=100, k=1)
    train = TrainConfig(lr=0.05, batch_size=20)
    optimizers = model.configure_optimizers(train)
    x = digits.split("train")
    for epoch in range(10):
        for index in torch.randperm(len(x)).split(train.batch_size):
            model.training_step(x[index], optimizers, train)
    return model.eval()


def test_ais_matches_exact_log_z_trained_64x16(trained_digits_rbm, digits):
    base = base_rate(digits.split("train"), "binary")
    assert_ais_close_to_exact(trained_digits_rbm.layer, base, temperatures=2000)


def test_raise_and_ais_bracket_the_exact_test_log_likelihood(trained_digits_rbm, digits):
    model = trained_digits_rbm
    x = digits.split("test")[:120].flatten(1).double()
    with torch.no_grad():
        log_p_tilde = model.unnormalized_log_prob(x)
    exact = log_p_tilde - model.exact_log_partition()
    path = model.annealing_path(base_rate(digits.split("train"), "binary"))
    # 1,000 temperatures: log Z_hat's spread over seeds is then 0.03 nats here (0.05 at 300)
    ais = run_ais(path, schedule(1000), 100, torch.Generator().manual_seed(3))
    ais_log_likelihood = float(log_p_tilde.mean()) - ais.log_z
    raise_log_p = run_raise(path, x, log_p_tilde, schedule(300), 1, torch.Generator().manual_seed(4))
    gap = raise_log_p - exact  # per example; <= 0 in expectation over the reverse chains
    stderr = float(gap.std()) / math.sqrt(len(gap))
    assert float(gap.mean()) <= 3 * stderr
    assert float(gap.mean()) > -1.0  # and it is a useful estimate, not a vacuous one
    # log Z_hat <= log Z in expectation, so the AIS-based log-likelihood is optimistic (up to 3 sigma)
    assert ais_log_likelihood >= float(exact.mean()) - (ais.log_z - ais.log_z_minus_3sd)
    assert ais_log_likelihood - float(exact.mean()) < 0.1


def test_metrics_on_a_small_rbm(trained_digits_rbm, digits):
    ctx = EvalContext(
        quick=True,
        settings={"ais_temperatures": 1000, "raise_temperatures": 200, "raise_examples": 60},
    )
    values = {v.name: v for v in evaluate(trained_digits_rbm, digits, ctx, only=["ais_nll", "raise_nll", "exact_nll"])}
    assert set(values) == {"ais_nll", "raise_nll", "nll"}
    assert values["nll"].kind == "exact" and values["ais_nll"].kind == "estimate"
    assert values["raise_nll"].kind == "bound"
    assert abs(values["ais_nll"].value - values["nll"].value) < 0.1
    protocol = values["ais_nll"].protocol
    assert protocol["ais_chains"] == 100 and protocol["ais_temperatures"] == 1000
    assert protocol["log_z_minus_3sd"] <= protocol["log_z"] <= protocol["log_z_plus_3sd"]
    assert values["raise_nll"].n == 60
    # on a different (seeded) test subset, so only loosely comparable to the full-test nll
    assert values["raise_nll"].value > values["nll"].value - 3.0


def test_float32_products_change_ais_by_far_less_than_its_noise():
    """Same random numbers, float32 vs float64 matrix products in the path (log f is float64
    in both): the log-weights agree to ~1e-6 nats at 784 x 200, except in the rare chain where
    a uniform falls within rounding of its Bernoulli threshold, the two draws differ and the
    chains part ways (their weights then differ by AIS noise, which no precision removes)."""
    layer = random_layer(784, 200, weight_std=0.05)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    results = [
        run_ais(layer.annealing_path(base, dtype), schedule(200), 50, torch.Generator().manual_seed(0))
        for dtype in (torch.float32, torch.float64)
    ]
    difference = (results[0].log_weights - results[1].log_weights).abs()
    assert float(difference.median()) < 1e-5
    assert int((difference < 1e-4).sum()) >= 45  # of 50 chains


def test_ais_metric_flags_a_log_z_below_the_training_set_bound(trained_digits_rbm, digits, monkeypatch):
    """log sum_{train v} p~(v) <= log Z always; a (forced) AIS result below it is flagged."""
    import dgmbench.metrics.ais as ais

    ctx = EvalContext(quick=True, settings={"ais_temperatures": 300})
    honest = evaluate(trained_digits_rbm, digits, ctx, only=["ais_nll"])[0].protocol
    assert honest["log_z_lower_bound_from_train"] <= trained_digits_rbm.exact_log_partition()
    assert honest["ais_log_z_below_certain_bound"] is False
    real_run_ais = ais.run_ais

    def broken_run_ais(*args, **kwargs):  # an AIS that missed most of the mass
        result = real_run_ais(*args, **kwargs)
        return ais.summarize_log_weights(result.log_weights - 50.0, result.temperatures)

    monkeypatch.setattr(ais, "run_ais", broken_run_ais)
    flagged = evaluate(trained_digits_rbm, digits, ctx, only=["ais_nll"])[0].protocol
    assert flagged["ais_log_z_below_certain_bound"] is True


class _GenericOnly:
    """A path seen through the AnnealingPath protocol only (no fused ``anneal``), so that
    run_ais / run_raise take the generic loop: log f differences, one transition per step."""

    def __init__(self, path):
        self.path, self.log_z_base = path, path.log_z_base

    def sample_base(self, n, generator):
        return self.path.sample_base(n, generator)

    def log_f(self, state, beta):
        return self.path.log_f(state, beta)

    def transition(self, state, beta, generator):
        return self.path.transition(state, beta, generator)

    def data_state(self, x, generator):
        return self.path.data_state(x, generator)


@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 2e-4)])
def test_fused_loop_equals_the_generic_loop_on_the_same_random_numbers(dtype, tolerance, monkeypatch):
    """The fused per-temperature increments (SummedOutLayerPath) against float64 log f
    differences, on identical chains (same generator, same draws): AIS and RAISE log-weights
    agree to float64 rounding with float64 products, and to 2e-4 nats with float32 ones.
    The fused loop draws from numpy's SFC64 on CPU and the generic loop's ``transition``
    from the torch generator it is handed: here both draw from the torch generator."""
    import dgmbench.models.energy.rbm as rbm_module
    from dgmbench.models.energy.draws import TorchDraws

    monkeypatch.setattr(rbm_module, "fast_draws", lambda generator, device: TorchDraws(generator))
    layer = random_layer(784, 60, weight_std=0.1, seed=3)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    path = layer.annealing_path(base, dtype)
    betas = schedule(150)
    fused = run_ais(path, betas, 30, torch.Generator().manual_seed(0))
    generic = run_ais(_GenericOnly(path), betas, 30, torch.Generator().manual_seed(0))
    torch.testing.assert_close(fused.log_weights, generic.log_weights, rtol=0, atol=tolerance)
    x = (torch.rand(10, 784, generator=torch.Generator().manual_seed(1)) < base).double()
    log_f_data = -layer.free_energy_float64(x)
    got = run_raise(path, x, log_f_data, betas, 2, torch.Generator().manual_seed(2))
    expected = run_raise(_GenericOnly(path), x, log_f_data, betas, 2, torch.Generator().manual_seed(2))
    torch.testing.assert_close(got, expected, rtol=0, atol=tolerance)


def test_float32_increments_carry_no_bias_that_grows_with_the_temperatures():
    """Per-temperature increments at one state, float32 products and arithmetic against
    float64: for fine steps (the standard schedule's 1e-5 .. 1e-3) the error must be far
    below 1e-8 nats per temperature on average, or 14,500 temperatures would shift log Z by
    more than ~1e-4 (a difference of float32 softplus / log-sigmoid values has a bias of
    ~1e-6 per temperature here: 0.01 nats over the standard schedule)."""
    layer = random_layer(784, 500, weight_std=0.05, seed=4)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    v = (torch.rand(200, 784, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    paths = [layer.annealing_path(base, dtype) for dtype in (torch.float32, torch.float64)]
    states = [path._state(v) for path in paths]
    for beta_from, beta_to in ((0.3, 0.30002), (0.7, 0.7001), (0.95, 0.950007), (0.95, 0.94999)):
        increments = [
            path._increment(state, beta_from, beta_to, torch.sigmoid(state[1] * beta_to)).double()
            for path, state in zip(paths, states)
        ]
        exact = paths[1].log_f(states[1], beta_to) - paths[1].log_f(states[1], beta_from)
        torch.testing.assert_close(increments[1], exact, rtol=0, atol=1e-10)
        error = increments[0] - increments[1]
        assert abs(float(error.mean())) < 2e-9 and float(error.abs().max()) < 2e-8, (float(error.mean()), float(error.abs().max()))


def test_log_weights_do_not_depend_on_the_thread_count(thread_pools):
    """On CPU the chains are annealed in two groups with their own seeded generators,
    concurrently when torch has two threads: one seed gives the same AIS and RAISE
    log-weights at one thread and at two (the same random draws; the products' float32 rounding
    may differ in a worker thread: measured 4e-6 of ~800 nats), and torch's thread count is restored."""
    import dgmbench.metrics.ais as ais

    layer = random_layer(784, 200, weight_std=0.05, seed=5)
    base = torch.sigmoid(layer.visible_bias.detach().double())
    path = layer.annealing_path(base)
    x = (torch.rand(40, 784, generator=torch.Generator().manual_seed(1)) < base).double()
    log_f_data = -layer.free_energy_float64(x)
    previous = torch.get_num_threads()
    results = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results[threads] = (
                run_ais(path, schedule(40), 40, torch.Generator().manual_seed(0)).log_weights,
                run_raise(path, x, log_f_data, schedule(40), 1, torch.Generator().manual_seed(0)),
            )
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(previous)
    assert thread_pools == [ais.CHAIN_GROUPS, ais.CHAIN_GROUPS]  # two threads: the groups ran concurrently
    for one_thread, two_threads in zip(results[1], results[2]):
        torch.testing.assert_close(one_thread, two_threads, rtol=1e-7, atol=0)


def test_hidden_input_bound_is_attained_by_enumeration():
    """The RBM path's bound on |a_j(v)| = |c_j + v.W_j| equals the largest value over all
    visible states (enumerated on a 10-visible layer), so no state can exceed it."""
    layer = random_layer(10, 7, weight_std=1.0, seed=6)
    path = layer.annealing_path(torch.full((10,), 0.4, dtype=torch.float64), torch.float64)
    largest = float(path._state(all_states(10))[1].abs().max())
    assert path._hidden_input_bound() == pytest.approx(largest, rel=1e-12)


@pytest.mark.parametrize("form", ["product", "sum of logs", "softplus difference"])
def test_each_increment_form_equals_the_log_f_difference(form, monkeypatch):
    """The increment's three evaluations (log of the product over units; sum of per-unit logs
    when the product could leave float64's range; softplus difference for large steps)
    against float64 log f differences at one state, for ascending and descending steps."""
    layer = random_layer(784, 300, weight_std=0.1, seed=7)
    path = layer.annealing_path(torch.sigmoid(layer.visible_bias.detach().double()), torch.float64)
    if form == "sum of logs":
        monkeypatch.setattr(path, "MAX_PRODUCT_EXPONENT", 0.0)
    if form == "softplus difference":
        monkeypatch.setattr(path, "LARGE_STEP", 0.0)
    v = (torch.rand(50, 784, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    state = path._state(v)
    bound = path._hidden_input_bound()
    for beta_from, beta_to in ((0.3, 0.31), (0.9, 0.9001), (0.95, 0.94)):
        probs = torch.sigmoid(state[1] * beta_to)
        increment = path._increment(state, beta_from, beta_to, probs, bound)
        expected = path.log_f(state, beta_to) - path.log_f(state, beta_from)
        torch.testing.assert_close(increment, expected, rtol=0, atol=1e-10)


def test_fast_draws_are_seeded_by_the_callers_generator():
    """numpy's SFC64 stream on CPU, seeded by one draw from the torch generator: one seed,
    one stream; another seed, another stream; uniforms in [0, 1) with mean 1/2."""
    from dgmbench.models.energy.draws import NumpyDraws, fast_draws

    def draw(seed):
        draws = fast_draws(torch.Generator().manual_seed(seed), torch.device("cpu"))
        assert isinstance(draws, NumpyDraws)
        return draws.uniform((1000, 100), "cpu")

    first, again, other = draw(0), draw(0), draw(1)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.dtype == torch.float32 and 0 <= float(first.min()) and float(first.max()) < 1
    assert abs(float(first.double().mean()) - 0.5) < 5 * (1 / 12 / first.numel()) ** 0.5
