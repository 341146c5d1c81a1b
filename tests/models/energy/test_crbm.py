"""Convolutional RBM: every quantity checked against brute-force enumeration on tiny images.

Ground truths are computed here from the energy written out element by element (explicit
loops over filter positions, no conv2d), summing over every visible and every admissible
hidden configuration (at most one unit on per pooling block)."""
import io
import itertools
import math

import pytest
import torch
from scipy.stats import chisquare

from dgmbench.data.base import DataInfo
from dgmbench.data.digits import _load as load_digits
from dgmbench.metrics.ais import ReversiblePath, run_ais, schedule
from dgmbench.models.base import TrainConfig, build_model
from dgmbench.models.energy.crbm import ConvolutionalRBM


def tiny_info(side: int) -> DataInfo:
    return DataInfo(name="tiny", variant="binary", shape=(1, side, side), value_type="binary", num_levels=2)


def random_crbm(side, filter_size, pool_size, filters=2, scale=1.0, seed=0) -> ConvolutionalRBM:
    torch.manual_seed(seed)
    model = build_model(
        "crbm", tiny_info(side), filters=filters, filter_size=filter_size, pool_size=pool_size, num_chains=7
    ).double()
    with torch.no_grad():
        model.filters.normal_(0, scale)
        model.hidden_bias.normal_(0, scale)
        model.visible_bias.normal_(0, scale)
    return model


def all_binary(count: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=count)), dtype=torch.float64)


def brute_force_responses(model: ConvolutionalRBM, v: torch.Tensor) -> torch.Tensor:
    """I^k_ij = b_k + sum_rs W^k_rs v_{i+r, j+s}, by explicit loops; shape (n, K*H'*W')."""
    k_count, out_h, out_w = model.hidden_shape
    size = model.config.filter_size
    W, b = model.filters.detach(), model.hidden_bias.detach()
    columns = []
    for k in range(k_count):
        for i in range(out_h):
            for j in range(out_w):
                total = b[k].expand(v.shape[0]).clone()
                for r in range(size):
                    for s in range(size):
                        total = total + W[k, 0, r, s] * v[:, 0, i + r, j + s]
                columns.append(total)
    return torch.stack(columns, 1)


def admissible_hidden_states(model: ConvolutionalRBM) -> torch.Tensor:
    """All h (flattened as K, H', W') with at most one unit on per C x C block."""
    k_count, out_h, out_w = model.hidden_shape
    c = model.config.pool_size
    states = all_binary(k_count * out_h * out_w)
    maps = states.view(-1, k_count, out_h // c, c, out_w // c, c)
    ok = (maps.sum((3, 5)) <= 1).flatten(1).all(1)
    return states[ok]


def brute_force_neg_energy(model, v, h):
    """-E(v, h) for every pair: (n_v, n_h)."""
    visible = (v * model.visible_bias.detach()).flatten(1).sum(1)
    return brute_force_responses(model, v) @ h.T + visible[:, None]


GEOMETRIES = [(3, 2, 2), (3, 2, 1), (4, 3, 2)]  # (image side, filter size, pool size)


@pytest.mark.parametrize("side,filter_size,pool_size", GEOMETRIES)
def test_free_energy_equals_brute_force_sum_over_hidden_states(side, filter_size, pool_size):
    model = random_crbm(side, filter_size, pool_size)
    v = all_binary(side * side)[::7].view(-1, 1, side, side)
    h = admissible_hidden_states(model)
    expected = torch.logsumexp(brute_force_neg_energy(model, v, h), 1)
    torch.testing.assert_close(model.unnormalized_log_prob(v), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("side,filter_size,pool_size", GEOMETRIES)
def test_exact_normalization_against_joint_enumeration(side, filter_size, pool_size):
    model = random_crbm(side, filter_size, pool_size, scale=0.7)
    v = all_binary(side * side).view(-1, 1, side, side)
    neg_energy = brute_force_neg_energy(model, v, admissible_hidden_states(model))
    log_z_joint = torch.logsumexp(neg_energy.flatten(), 0)
    assert model.exact_log_partition() == pytest.approx(log_z_joint.item(), abs=1e-9)
    total = torch.exp(model.unnormalized_log_prob(v) - log_z_joint).sum()
    assert total.item() == pytest.approx(1.0, abs=1e-10)


def test_annealing_path_endpoints_and_intermediate_normalizers():
    model = random_crbm(3, 2, 2, scale=0.8)
    base = torch.rand(9, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.1
    path = model.annealing_path(base)
    assert isinstance(path, ReversiblePath)
    v = all_binary(9).view(-1, 1, 3, 3)
    state = path.data_state(v.flatten(1), None)
    # beta = 0: the base model times uniform hidden blocks, normalised by log_z_base.
    assert torch.logsumexp(path.log_f(state, 0.0), 0).item() == pytest.approx(path.log_z_base, abs=1e-10)
    # beta = 1: the model's own unnormalised density.
    torch.testing.assert_close(path.log_f(state, 1.0), model.unnormalized_log_prob(v), rtol=0, atol=1e-10)
    # in between: h summed out of exp((1 - beta) a.v - beta E(v, h)), by brute force.
    beta = 0.37
    base_logits = torch.logit(base.double())
    neg_energy = brute_force_neg_energy(model, v, admissible_hidden_states(model))
    expected = torch.logsumexp(beta * neg_energy, 1) + (1 - beta) * (v.flatten(1) @ base_logits)
    torch.testing.assert_close(path.log_f(state, beta), expected, rtol=0, atol=1e-10)


def test_ais_log_partition_matches_enumeration():
    model = random_crbm(4, 3, 2, filters=3, scale=0.6, seed=3)
    exact = model.exact_log_partition()
    base = torch.full((16,), 0.4)
    result = run_ais(model.annealing_path(base), schedule(1000), chains=200,
                     generator=torch.Generator().manual_seed(0))
    assert abs(result.log_z - exact) < 0.1
    assert result.log_z_minus_3sd <= exact <= result.log_z_plus_3sd


def test_block_gibbs_sampler_has_the_model_as_stationary_distribution():
    model = random_crbm(3, 2, 2, scale=1.0, seed=5)
    v_all = all_binary(9).view(-1, 1, 3, 3)
    exact = torch.softmax(model.unnormalized_log_prob(v_all), 0).detach()
    generator = torch.Generator().manual_seed(0)
    v = torch.bernoulli(torch.full((20_000, 1, 3, 3), 0.5, dtype=torch.float64), generator=generator)
    with torch.no_grad():
        for _ in range(20):
            v = model.gibbs_step(v, generator)
    codes = (v.flatten(1) * (2 ** torch.arange(8, -1, -1, dtype=torch.float64))).sum(1).long()
    counts = torch.bincount(codes, minlength=512).double()
    # Pearson's test, pooling the rare states so every cell expects >= 5 counts.
    expected = exact * len(codes)
    rare = expected < 5
    observed = torch.cat([counts[~rare], counts[rare].sum(0, keepdim=True)])
    expected = torch.cat([expected[~rare], expected[rare].sum(0, keepdim=True)])
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3


def test_free_energy_gradient_is_the_posterior_expectation_of_the_energy_gradient():
    """d log p~(v)/dW = E_{h|v}[-dE/dW], the positive-phase statistic of CD (brute force)."""
    model = random_crbm(4, 3, 2, scale=0.7)
    v = all_binary(16)[[3, 100, 4000, 60000]].view(-1, 1, 4, 4)
    model.unnormalized_log_prob(v).sum().backward()
    h = admissible_hidden_states(model)
    posterior = torch.softmax(brute_force_neg_energy(model, v, h), 1)  # (n, n_h)
    k_count, out_h, out_w = model.hidden_shape
    expected_h = (posterior @ h).view(-1, k_count, out_h, out_w)
    expected = torch.zeros_like(model.filters)
    for r, s in itertools.product(range(3), range(3)):
        patch = v[:, 0, r : r + out_h, s : s + out_w]  # v_{i+r, j+s}
        expected[:, 0, r, s] = (expected_h * patch[:, None]).sum((0, 2, 3))
    torch.testing.assert_close(model.filters.grad, expected, rtol=0, atol=1e-10)
    torch.testing.assert_close(model.hidden_bias.grad, expected_h.sum((0, 2, 3)), rtol=0, atol=1e-10)
    torch.testing.assert_close(model.visible_bias.grad, v.sum(0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("persistent", [True, False])
def test_training_step_updates_parameters_and_chains(persistent):
    torch.manual_seed(0)
    dataset = load_digits("binary")
    model = build_model("crbm", dataset.info, filters=4, persistent=persistent, num_chains=10)
    train = TrainConfig(lr=1e-2)
    optimizers = model.configure_optimizers(train)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    chains_before = model.chains.clone()
    logs = model.training_step(dataset.split("train")[:32], optimizers, train)
    assert all(math.isfinite(value) for value in logs.values())
    for name, p in model.named_parameters():
        assert p.shape == before[name].shape and not torch.equal(p, before[name]), name
    assert model.chains.shape == (10, 1, 8, 8)
    assert torch.equal(model.chains, chains_before) != persistent
    assert bool(model.initialised)


def test_pcd_training_lowers_the_exact_nll_of_a_tiny_dataset():
    torch.manual_seed(0)
    patterns = torch.tensor(
        [[1, 1, 1, 0, 0, 0, 1, 1, 1], [1, 0, 1, 1, 0, 1, 1, 0, 1], [0, 1, 0, 1, 1, 1, 0, 1, 0]],
        dtype=torch.float32,
    ).view(-1, 1, 3, 3)
    data = patterns.repeat(20, 1, 1, 1)
    model = build_model("crbm", tiny_info(3), filters=6, filter_size=2, pool_size=1, num_chains=60)

    def exact_nll():
        with torch.no_grad():
            return (model.exact_log_partition() - model.unnormalized_log_prob(patterns)).mean().item()

    start = exact_nll()
    train = TrainConfig(lr=0.01)
    optimizers = model.configure_optimizers(train)
    for _ in range(300):
        model.training_step(data, optimizers, train)
    assert exact_nll() < start - 1.5  # from ~log 512 = 6.2 towards log 3 = 1.1 (reaches ~3.9)


def test_sampling_shapes_and_values():
    info = load_digits("binary").info
    model = build_model("crbm", info, **{**ConvolutionalRBM.quick_config(info), "sample_steps": 3})
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8)
    assert set(samples.unique().tolist()) <= {0.0, 1.0}


def test_checkpoint_round_trip_restores_chains():
    info = load_digits("binary").info
    model = build_model("crbm", info, filters=4)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    restored = build_model("crbm", info, filters=4)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(restored.chains, model.chains)
    assert torch.equal(restored.filters, model.filters)


def test_pseudo_likelihood_validation_score_and_configuration_errors():
    dataset = load_digits("binary")
    model = build_model("crbm", dataset.info, filters=4)
    score = model.validation_score(dataset.split("valid"))
    # An untrained model with zero biases gives every pixel probability ~ 1/2.
    assert score == pytest.approx(64 * math.log(2), rel=0.05)
    with pytest.raises(ValueError, match="pool_size"):
        build_model("crbm", dataset.info, filter_size=4, pool_size=2)  # 5x5 hidden maps
    assert not model.exact_log_partition_feasible()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_with_a_cpu_or_cuda_generator():
    dataset = load_digits("binary")
    model = build_model("crbm", dataset.info, filters=4, sample_steps=2).cuda()
    train = TrainConfig(lr=1e-2)
    logs = model.training_step(dataset.split("train")[:16].cuda(), model.configure_optimizers(train), train)
    assert all(math.isfinite(value) for value in logs.values())
    assert model.sample(3).device.type == "cuda"
    for generator in (torch.Generator().manual_seed(0), torch.Generator(device="cuda").manual_seed(0)):
        result = run_ais(model.annealing_path(torch.full((64,), 0.3)), schedule(20), chains=5, generator=generator)
        assert math.isfinite(result.log_z)


def test_quick_run_through_the_runner_records_ais_and_raise(tmp_path):
    """Regression: the AIS metric's training-set bound once flattened images before
    scoring them, which broke image-shaped energy models in the runner."""
    from dgmbench.results import ResultsStore
    from dgmbench.runner import RunSpec, run

    run(RunSpec(model="crbm", quick=True, results_dir=str(tmp_path / "r"), workdir=str(tmp_path / "w"),
                train_options={"epochs": 1}, progress=False,
                eval_options={"metrics": ["ais_nll", "raise_nll"], "ais_temperatures": 200, "raise_temperatures": 100}),
        log=lambda msg: None)
    (record,) = ResultsStore(tmp_path / "r").load()
    names = {m["name"] for m in record["metrics"]}
    assert {"ais_nll", "raise_nll"} <= names


@pytest.mark.parametrize("pool_size,shared", [(2, False), (1, True), (3, False)])
def test_direct_gradients_equal_autograd_of_the_free_energy_surrogate(pool_size, shared):
    """contrastive_divergence_gradients against autograd of mean F(x) - mean F(negatives)."""
    torch.manual_seed(0)
    info = tiny_info(8)
    filter_size = {1: 3, 2: 5, 3: 3}[pool_size]
    model = build_model("crbm", info, filters=3, filter_size=filter_size, pool_size=pool_size,
                        shared_visible_bias=shared, num_chains=5).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.7)
    x = torch.bernoulli(torch.full((6, 1, 8, 8), 0.4, dtype=torch.float64))
    negatives = torch.bernoulli(torch.full((5, 1, 8, 8), 0.6, dtype=torch.float64))
    surrogate = model.free_energy(x).mean() - model.free_energy(negatives).mean()
    expected = torch.autograd.grad(surrogate, list(model.parameters()))
    data_free_energy, gap = model.contrastive_divergence_gradients(x, negatives)
    assert gap == pytest.approx(surrogate.item(), abs=1e-10)
    assert data_free_energy == pytest.approx(model.free_energy(x).mean().item(), abs=1e-10)
    for (name, p), e in zip(model.named_parameters(), expected):
        torch.testing.assert_close(p.grad, e, rtol=0, atol=1e-10, msg=name)


def test_direct_updates_equal_the_autograd_updates_over_several_steps():
    """Same seed and batches: parameters and chains after PCD steps equal those of the
    autograd formulation (the step as it was) to 1e-6. SGD with momentum here: Adam (the
    model's default) divides by sqrt(E[g^2]), which turns float32 rounding of a gradient that
    is exactly 0 in one formulation (a pixel with equal data and negative means) into a full
    step; the gradients themselves are compared to 1e-10 in float64 above."""
    data = load_digits("binary").split("train")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("crbm", load_digits("binary").info, filters=4, num_chains=10))
    train = TrainConfig(lr=1e-2)
    optimizers = [{"model": torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)} for model in models]

    def autograd_step(model, x, opt):
        if not bool(model.initialised):
            with torch.no_grad():
                model.visible_bias.copy_(torch.logit(x.mean(0, keepdim=True).reshape(model.visible_bias.shape).clamp(0.01, 0.99)))
            model.initialised.fill_(True)
        negatives = model._negative_particles(x)
        opt.zero_grad(set_to_none=True)
        surrogate = model.free_energy(x).mean() - model.free_energy(negatives).mean()
        surrogate.backward()
        opt.step()
        return surrogate.item()

    for step in range(4):
        batch = data[step * 20 : (step + 1) * 20]
        torch.manual_seed(3 + step)
        logs = models[0].training_step(batch, optimizers[0], train)
        torch.manual_seed(3 + step)
        assert logs["free_energy_gap"] == pytest.approx(autograd_step(models[1], batch, optimizers[1]["model"]), abs=1e-4)
    for (name, p), e in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(p, e, rtol=0, atol=1e-6, msg=name)
    torch.testing.assert_close(models[0].chains, models[1].chains, rtol=0, atol=0)
