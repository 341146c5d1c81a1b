"""Binary RBM: conditionals and free energy against brute-force sums over the joint, the CD
surrogate's gradient against autograd of the exact log-likelihood, training, resuming."""
import itertools

import pytest
import torch

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.models.base import MODELS, EnergyBased, TrainConfig, build_model
from dgmbench.models.energy.rbm import RBM
from dgmbench.train.checkpoint import load_checkpoint
from dgmbench.train.trainer import fit

TINY = DataInfo(name="tiny", variant="binary", shape=(6,), value_type="binary", num_levels=2)


def all_states(bits):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=bits)))


def tiny_model(hidden=4, seed=0, **overrides):
    torch.manual_seed(seed)
    model = build_model("rbm", TINY, hidden=hidden, init_std=1.0, **overrides)
    with torch.no_grad():
        model.layer.visible_bias.normal_()
        model.layer.hidden_bias.normal_()
    return model


def test_registered_with_metadata():
    cls = MODELS.get("rbm")
    assert cls is RBM and cls.family == "energy" and issubclass(cls, EnergyBased)
    assert cls.value_types == ("binary",) and cls.citation


def test_free_energy_and_conditionals_match_the_joint():
    model = tiny_model()
    layer = model.layer
    v, h = all_states(6), all_states(4)
    W, b, c = layer.weight.detach(), layer.visible_bias.detach(), layer.hidden_bias.detach()
    neg_energy = (v @ b)[:, None] + (h @ c)[None, :] + v @ W @ h.T  # (v, h)
    with torch.no_grad():
        torch.testing.assert_close(-layer.free_energy(v), torch.logsumexp(neg_energy, 1), rtol=0, atol=1e-5)
        p_h_given_v = torch.softmax(neg_energy, 1)  # joint over h given each v
        torch.testing.assert_close(layer.hidden_probs(v), p_h_given_v @ h, rtol=0, atol=1e-5)
        p_v_given_h = torch.softmax(neg_energy, 0)
        torch.testing.assert_close(layer.visible_probs(h), p_v_given_h.T @ v, rtol=0, atol=1e-5)


def test_surrogate_gradient_with_exact_negative_phase_is_the_likelihood_gradient():
    """mean F(data) - E_model F(v) (expectation by enumeration, weights detached) has the
    gradient of the exact mean NLL (autograd through log Z by enumeration)."""
    model = tiny_model()
    layer = model.layer
    data = all_states(6)[torch.randperm(64, generator=torch.Generator().manual_seed(0))[:10]]
    v = all_states(6)

    def exact_nll():
        return (layer.free_energy(data).mean() + torch.logsumexp(-layer.free_energy(v), 0))

    expected = torch.autograd.grad(exact_nll(), list(layer.parameters()))
    model_probs = torch.softmax(-layer.free_energy(v), 0).detach()
    surrogate = layer.free_energy(data).mean() - (model_probs * layer.free_energy(v)).sum()
    got = torch.autograd.grad(surrogate, list(layer.parameters()))
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_block_gibbs_leaves_the_model_distribution_invariant():
    """The exact one-step transition matrix T(v'|v) = sum_h p(h|v) p(v'|h) has p as a fixed point."""
    model = tiny_model(hidden=3)
    layer = model.layer
    v, h = all_states(6), all_states(3)
    with torch.no_grad():
        p_v = torch.softmax(-layer.free_energy(v), 0)
        ph, pv = layer.hidden_probs(v), layer.visible_probs(h)
        p_h_given_v = torch.exp(torch.log(ph) @ h.T + torch.log1p(-ph) @ (1 - h).T)
        p_v_given_h = torch.exp(torch.log(pv) @ v.T + torch.log1p(-pv) @ (1 - v).T)
        torch.testing.assert_close(p_v @ (p_h_given_v @ p_v_given_h), p_v, rtol=1e-4, atol=1e-7)


def test_training_lowers_exact_nll_and_samples_are_binary():
    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    for persistent in (False, True):
        model = build_model("rbm", dataset.info, hidden=8, persistent=persistent, k=1, sample_steps=20)
        train = TrainConfig(lr=0.05, batch_size=50, weight_decay=1e-4)
        optimizers = model.configure_optimizers(train)
        x = dataset.split("train")
        valid = dataset.split("valid")
        before = model.validation_score(valid)
        for epoch in range(3):
            for index in torch.randperm(len(x)).split(train.batch_size):
                scalars = model.training_step(x[index], optimizers, train)
                assert set(scalars) == {"free_energy_gap"}
        after = model.validation_score(valid)
        assert after < before - 5, (persistent, before, after)  # exact NLL (8 hidden units)
        samples = model.sample(7)
        assert samples.shape == (7, 1, 8, 8)
        assert set(samples.unique().tolist()) <= {0.0, 1.0}


def test_pseudo_likelihood_validation_for_large_models():
    model = build_model("rbm", load_dataset("digits/binary").info, hidden=40)
    x = torch.bernoulli(torch.full((30, 1, 8, 8), 0.3))
    score = model.validation_score(x)
    # at init (W ~ 0) every conditional is close to sigmoid(b) = 1/2: D log 2 per example
    assert abs(score - 64 * torch.log(torch.tensor(2.0)).item()) < 2.0
    assert score == model.validation_score(x)  # seeded flips: deterministic


def test_persistent_chains_resume_from_checkpoint(tmp_path):
    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    model = build_model("rbm", dataset.info, **RBM.quick_config(dataset.info))
    fit(model, dataset, TrainConfig(epochs=1, lr=0.05, batch_size=100), tmp_path, torch.device("cpu"), progress=False)
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    assert state["persistent_chains"].shape == (100, 64)
    torch.testing.assert_close(state["persistent_chains"], model.persistent_chains)
    fresh = build_model("rbm", dataset.info, **RBM.quick_config(dataset.info))
    fresh.load_state_dict(state)
    torch.testing.assert_close(fresh.persistent_chains, model.persistent_chains)
    assert bool(fresh.initialised)


def autograd_training_step(model, x, optimizer):
    """The RBM's training step as it was before the direct statistics: autograd through the
    free-energy surrogate mean F(data) - mean F(negatives) (the reference for the test below)."""
    v = x.flatten(1)
    if model.config.init_visible_bias_from_data and not bool(model.initialised):
        with torch.no_grad():
            p = v.mean(0).clamp(0.01, 0.99)
            model.layer.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
        model.initialised.fill_(True)
    optimizer.zero_grad(set_to_none=True)
    negative = model.negative_phase(v)
    loss = model.layer.contrastive_divergence_loss(v, negative)
    loss.backward()
    optimizer.step()
    return loss.item()



@pytest.mark.parametrize("k,persistent", [(1, False), (3, False), (1, True), (2, True)])
def test_direct_cd_updates_equal_the_autograd_surrogate_updates(k, persistent):
    """Same seed, same batches, same generator state before every step: the parameters,
    momentum buffers and persistent chains after several SGD-with-momentum steps (weight
    decay on W) equal those of the autograd formulation to 1e-6."""
    data = load_dataset("digits/binary").split("train")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("rbm", data_info(), hidden=40, k=k, persistent=persistent, pcd_chains=30, init_std=0.1))
    direct, reference = models
    initial = [p.detach().clone() for p in direct.parameters()]
    train = TrainConfig(lr=0.1, batch_size=50, weight_decay=1e-3)
    optimizers = direct.configure_optimizers(train), reference.configure_optimizers(train)
    for step in range(6):
        batch = data[step * 50 : (step + 1) * 50]
        torch.manual_seed(100 + step)
        gap = direct.training_step(batch, optimizers[0], train)["free_energy_gap"]
        torch.manual_seed(100 + step)
        expected_gap = autograd_training_step(reference, batch, optimizers[1]["model"])
        assert gap == pytest.approx(expected_gap, abs=1e-4)
    for (name, got), expected, start in zip(direct.named_parameters(), reference.parameters(), initial):
        assert (got - start).abs().max() > 1e-3, name  # the steps really moved every parameter
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
        # the accumulated gradients (momentum buffers) agree to float32 rounding of sums
        momentum = optimizers[0]["model"].state[got]["momentum_buffer"]
        torch.testing.assert_close(momentum, optimizers[1]["model"].state[expected]["momentum_buffer"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(direct.persistent_chains, reference.persistent_chains, rtol=0, atol=0)


def data_info():
    return load_dataset("digits/binary").info


def test_schedules_follow_the_released_salakhutdinov_murray_code():
    """final_momentum / k_increase_updates: momentum 0.5 until `momentum_switch_updates`
    updates are done, then 0.9; Gibbs steps 1, 1, 2, 2, 3, ... (one more every
    `k_increase_updates` updates, capped at k) with learning rate lr / steps (rbm.m's
    T = ceil(epoch / 10), lr / T, in updates). The parameters equal those of unscheduled
    updates whose k, momentum and lr are set by hand to the same values before every step."""
    data = load_dataset("digits/binary").split("train")
    schedule = dict(final_momentum=0.9, momentum_switch_updates=3, k_increase_updates=2)
    torch.manual_seed(0)
    scheduled = build_model("rbm", data_info(), hidden=20, k=3, init_std=0.1, **schedule)
    torch.manual_seed(0)
    by_hand = build_model("rbm", data_info(), hidden=20, k=3, init_std=0.1)
    train = TrainConfig(lr=0.1, batch_size=50, weight_decay=1e-3)
    optimizers = scheduled.configure_optimizers(train), by_hand.configure_optimizers(train)
    used = []
    record = scheduled.layer.contrastive_divergence_gradients

    def recording(v, start, k, generator=None):
        used.append(k)
        return record(v, start, k, generator)

    scheduled.layer.contrastive_divergence_gradients = recording
    expected_k = [1, 1, 2, 2, 3, 3, 3, 3]
    for step, k in enumerate(expected_k):
        batch = data[step * 50 : (step + 1) * 50]
        momentum = 0.5 if step < 3 else 0.9
        assert scheduled.schedule() == (k, momentum, 1.0 / k)
        torch.manual_seed(100 + step)
        scheduled.training_step(batch, optimizers[0], train)
        group = optimizers[0]["model"].param_groups[0]
        assert (group["momentum"], group["lr"]) == (momentum, pytest.approx(0.1 / k))
        by_hand.config.k = k
        for group in optimizers[1]["model"].param_groups:
            group["momentum"], group["lr"] = momentum, 0.1 / k
        torch.manual_seed(100 + step)
        by_hand.training_step(batch, optimizers[1], train)
    assert used == expected_k and int(scheduled.updates) == len(expected_k)
    for (name, got), expected in zip(scheduled.named_parameters(), by_hand.parameters()):
        torch.testing.assert_close(got, expected, rtol=0, atol=0, msg=name)


def test_schedule_clock_is_checkpointed_and_unscheduled_checkpoints_keep_their_format(tmp_path):
    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    model = build_model("rbm", dataset.info, hidden=8, final_momentum=0.9, momentum_switch_updates=5)
    fit(model, dataset, TrainConfig(epochs=2, lr=0.05, batch_size=100), tmp_path, torch.device("cpu"), progress=False)
    state = load_checkpoint(tmp_path / "last.pt")["model"]
    steps_per_epoch = -(-len(dataset.split("train")) // 100)
    assert int(state["updates"]) == 2 * steps_per_epoch
    fresh = build_model("rbm", dataset.info, hidden=8, final_momentum=0.9, momentum_switch_updates=5)
    fresh.load_state_dict(state)
    assert fresh.schedule()[1] == 0.9
    assert "updates" not in build_model("rbm", dataset.info, hidden=8).state_dict()


@pytest.mark.parametrize(
    "bad", [dict(final_momentum=1.0), dict(k_increase_updates=0), dict(momentum_switch_updates=-1)]
)
def test_bad_schedule_options_are_refused(bad):
    with pytest.raises(ValueError):
        build_model("rbm", TINY, hidden=4, **bad)


def test_schedule_options_at_their_defaults_keep_run_keys():
    from dgmbench.runner import identity_config

    config = RBM.Config(hidden=500, k=25)
    assert set(identity_config(config)) == {
        "hidden", "k", "persistent", "pcd_chains", "momentum", "init_std", "init_visible_bias_from_data",
        "sample_steps", "validation_flips",
    }
    assert identity_config(RBM.Config(final_momentum=0.9))["final_momentum"] == 0.9
