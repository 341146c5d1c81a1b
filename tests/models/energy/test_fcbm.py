"""Fully connected BM: enumeration against an energy written pair by pair, Gibbs sweeps
against the exact distribution, exact training, AIS/RAISE against exact log Z / log p."""
import itertools
import math

import torch

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.metrics.ais import run_ais, run_raise, schedule
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.models.base import MODELS, EnergyBased, TrainConfig, build_model
from dgmbench.models.energy.fcbm import FullyConnectedBM


def tiny(dim=4, hidden=3, std=0.8, seed=0):
    info = DataInfo(name="tiny", variant="binary", shape=(dim,), value_type="binary", num_levels=2)
    torch.manual_seed(seed)
    model = build_model("fcbm", info, hidden=hidden, init_std=std)
    with torch.no_grad():
        model.bias.normal_()
    return model


def states(bits):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=bits)), dtype=torch.float64)


def slow_negative_energy(model, s):
    """-E(s) = sum_i a_i s_i + sum_{i<j} J_ij s_i s_j, one pair at a time."""
    J, a = model.coupling.detach().double(), model.bias.detach().double()
    n = len(a)
    return sum(a[i] * s[i] for i in range(n)) + sum(J[i, j] * s[i] * s[j] for i in range(n) for j in range(i + 1, n))


def test_registered():
    cls = MODELS.get("fcbm")
    assert cls is FullyConnectedBM and issubclass(cls, EnergyBased) and cls.family == "energy"


def test_coupling_is_symmetric_with_zero_diagonal():
    J = tiny().coupling
    assert torch.equal(J, J.T) and torch.all(J.diagonal() == 0)


def test_log_z_and_marginals_match_pairwise_brute_force():
    model = tiny()
    joint = states(7)
    neg_energy = torch.stack([slow_negative_energy(model, s) for s in joint])
    assert abs(model.exact_log_partition() - float(torch.logsumexp(neg_energy, 0))) < 1e-10
    with torch.no_grad():
        log_p_tilde = model.unnormalized_log_prob(states(4))
    expected = torch.logsumexp(neg_energy.view(16, 8), 1)  # v are the leading bits
    torch.testing.assert_close(log_p_tilde, expected, rtol=0, atol=1e-10)
    assert abs(float(torch.logsumexp(log_p_tilde - model.exact_log_partition(), 0))) < 1e-10


def test_gibbs_sweeps_sample_the_exact_distribution():
    model = tiny(dim=3, hidden=2, std=1.0)
    joint = states(5)
    with torch.no_grad():
        exact = torch.softmax(model.negative_energy(joint, torch.float64), 0)
    torch.manual_seed(0)
    s = torch.bernoulli(torch.full((20_000, 5), 0.5))
    for _ in range(30):
        s = model.gibbs_sweep(s)
    index = (s * 2 ** torch.arange(4, -1, -1)).sum(1).long()  # row order of itertools.product
    empirical = torch.bincount(index, minlength=32).double() / len(s)
    assert 0.5 * float((empirical - exact).abs().sum()) < 0.03


def test_exact_training_descends_the_exact_nll():
    model = tiny(dim=5, hidden=3, std=0.01)
    assert model.exact
    data = torch.bernoulli(torch.full((60, 5), 0.5), generator=torch.Generator().manual_seed(1))
    data[:, 1] = data[:, 0]  # a correlation for the couplings to learn
    train = TrainConfig(lr=0.05, batch_size=None)
    optimizers = model.configure_optimizers(train)
    first = model.validation_score(data)
    for _ in range(100):
        scalars = model.training_step(data, optimizers, train)
    assert abs(scalars["nll"] - model.validation_score(data)) < 0.05  # the loss is the exact NLL
    assert model.validation_score(data) < first - 0.3


def test_ais_and_raise_against_exact_on_a_14_unit_machine():
    model = tiny(dim=10, hidden=4, std=0.4, seed=2)
    exact = model.exact_log_partition()
    base = torch.full((10,), 0.4, dtype=torch.float64)
    path = model.annealing_path(base)
    result = run_ais(path, schedule(500), 100, torch.Generator().manual_seed(0))
    assert abs(result.log_z - exact) < 0.1 and result.log_z_minus_3sd <= exact <= result.log_z_plus_3sd
    x = torch.bernoulli(torch.full((200, 10), 0.5), generator=torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        log_p_tilde = model.unnormalized_log_prob(x)
    raise_log_p = run_raise(path, x, log_p_tilde, schedule(100), 1, torch.Generator().manual_seed(1))
    gap = raise_log_p - (log_p_tilde - exact)
    assert float(gap.mean()) <= 3 * float(gap.std()) / math.sqrt(len(gap))
    assert float(gap.mean()) > -1.0


def test_digits_config_runs_the_pcd_branch_and_ais_metric():
    dataset = load_dataset("digits/binary")
    assert FullyConnectedBM.quick_config(dataset.info) is None  # left out of the quick suite
    torch.manual_seed(0)
    model = build_model("fcbm", dataset.info, **FullyConnectedBM.DIGITS_CONFIG)
    assert not model.exact and model.persistent_chains.shape == (100, 68)
    train = TrainConfig(lr=0.01, batch_size=50)
    optimizers = model.configure_optimizers(train)
    x = dataset.split("train")
    for index in torch.randperm(len(x))[:500].split(50):
        scalars = model.training_step(x[index], optimizers, train)
        assert math.isfinite(scalars["pcd_surrogate"])
    model.eval()
    ctx = EvalContext(quick=True, settings={"ais_temperatures": 200, "raise_temperatures": 50, "raise_examples": 20})
    values = {v.name: v for v in evaluate(model, dataset, ctx, only=["ais_nll", "raise_nll", "exact_nll"])}
    assert set(values) == {"ais_nll", "raise_nll"}  # 68 units: no enumeration
    assert 10 < values["ais_nll"].value < 64 * math.log(2) + 1
    samples = model.sample(4)
    assert samples.shape == (4, 1, 8, 8)
