"""DBN: exact log p(v) against a brute-force sum over every joint state, the variational
bound against its exact value (a sum over q's support) and against log p(v), and greedy
layer-wise training."""
import itertools

import torch
import torch.nn.functional as F

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.metrics.base import EvalContext, evaluate
from dgmbench.models.base import MODELS, TrainConfig, build_model
from dgmbench.models.energy.dbn import DBN

TINY = DataInfo(name="tiny", variant="binary", shape=(5,), value_type="binary", num_levels=2)


def all_states(bits):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=bits)), dtype=torch.float64)


def tiny_dbn(hidden=(3, 2), seed=0):
    torch.manual_seed(seed)
    model = build_model("dbn", TINY, hidden=hidden, init_std=1.0)
    with torch.no_grad():
        for layer in model.layers:
            layer.visible_bias.normal_()
            layer.hidden_bias.normal_()
    return model


def brute_force_log_p(model, v):
    """log p(v) = log sum_{h1,h2} p(v | h1) exp(-E_top(h1, h2)) / Z_top, every term written out."""
    bottom, top = model.layers
    W1, b1 = bottom.weight.detach().double(), bottom.visible_bias.detach().double()
    W2, b2, c2 = (p.detach().double() for p in (top.weight, top.visible_bias, top.hidden_bias))
    h1, h2 = all_states(W1.shape[1]), all_states(W2.shape[1])
    neg_energy_top = (h1 @ b2)[:, None] + (h2 @ c2)[None, :] + h1 @ W2 @ h2.T  # (h1, h2)
    log_z_top = torch.logsumexp(neg_energy_top.flatten(), 0)
    log_prior_h1 = torch.logsumexp(neg_energy_top, 1) - log_z_top
    probs = torch.sigmoid(h1 @ W1.T + b1)  # (h1, D)
    log_lik = v @ torch.log(probs).T + (1 - v) @ torch.log1p(-probs).T  # (n, h1)
    return torch.logsumexp(log_lik + log_prior_h1, 1), log_lik, log_prior_h1


def test_registered():
    cls = MODELS.get("dbn")
    assert cls is DBN and cls.family == "energy" and cls.value_types == ("binary",) and cls.citation


def test_exact_log_prob_matches_brute_force_and_normalises():
    model = tiny_dbn()
    v = all_states(5)
    expected, _, _ = brute_force_log_p(model, v)
    got = model.exact_log_prob(v)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-10)
    assert abs(float(torch.logsumexp(got, 0))) < 1e-10


def test_three_hidden_layers_normalise():
    model = tiny_dbn(hidden=(3, 2, 2))
    assert abs(float(torch.logsumexp(model.exact_log_prob(all_states(5)), 0))) < 1e-10


def test_bound_is_below_log_p_by_exactly_the_kl_and_monte_carlo_matches_it():
    model = tiny_dbn()
    bottom = model.layers[0]
    v = all_states(5)[[0, 7, 19, 31]]
    log_p, log_lik, log_prior_h1 = brute_force_log_p(model, v)
    h1 = all_states(3)
    with torch.no_grad():
        q_logits = v @ bottom.weight.double() + bottom.hidden_bias.double()
    log_q = h1 @ F.logsigmoid(q_logits).T + (1 - h1) @ F.logsigmoid(-q_logits).T  # (h1, n)
    q = log_q.exp()
    exact_bound = (q * (log_lik.T + log_prior_h1[:, None] - log_q)).sum(0)
    posterior = torch.softmax(log_lik + log_prior_h1, 1).T  # p(h1 | v), (h1, n)
    kl = (q * (log_q - posterior.log())).sum(0)
    torch.testing.assert_close(exact_bound, log_p - kl, rtol=0, atol=1e-10)
    assert torch.all(exact_bound < log_p)
    torch.manual_seed(0)
    log_z_top = model.exact_bound_log_partition()
    draws = 20_000  # one q-sample per replicated row: vectorised rather than looped
    estimate = model.unnormalized_bound(v.repeat_interleave(draws, 0), samples=1).view(4, draws).mean(1) - log_z_top
    torch.testing.assert_close(estimate, exact_bound, rtol=0, atol=0.03)


def test_greedy_training_freezes_lower_layers_and_resumes_by_counter():
    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    model = build_model(
        "dbn", dataset.info, hidden=(12, 6), updates_per_layer=30, persistent=True, pcd_chains=20, sample_steps=50
    )
    train = TrainConfig(lr=0.05, batch_size=20)
    optimizers = model.configure_optimizers(train)
    x = dataset.split("train")
    batches = torch.randperm(len(x))[: 60 * 20].split(20)
    layers_seen = []
    for step, index in enumerate(batches):
        if step == 30:
            frozen = [p.detach().clone() for p in model.layers[0].parameters()]
        layers_seen.append(int(model.training_step(x[index], optimizers, train)["layer"]))
    assert layers_seen == [0] * 30 + [1] * 30
    for before, after in zip(frozen, model.layers[0].parameters()):
        torch.testing.assert_close(before, after)
    assert int(model.state_dict()["updates_done"]) == 60
    resumed = build_model("dbn", dataset.info, hidden=(12, 6), updates_per_layer=30, persistent=True, pcd_chains=20)
    resumed.load_state_dict(model.state_dict())
    assert resumed.current_layer == 1 and bool(resumed.layer_started[1])
    samples = model.sample(5)
    assert samples.shape == (5, 1, 8, 8) and set(samples.unique().tolist()) <= {0.0, 1.0}


def test_trained_dbn_bound_is_below_exact_and_metrics_report_both():
    dataset = load_dataset("digits/binary")
    torch.manual_seed(0)
    model = build_model("dbn", dataset.info, **{**DBN.quick_config(dataset.info), "updates_per_layer": 300})
    train = TrainConfig(lr=0.05, batch_size=20)
    optimizers = model.configure_optimizers(train)
    x = dataset.split("train")
    for epoch in range(8):
        for index in torch.randperm(len(x)).split(train.batch_size):
            model.training_step(x[index], optimizers, train)
    assert model.current_layer == 1 and int(model.updates_done) > 300
    model.eval()
    ctx = EvalContext(quick=True, settings={"vlb_samples": 20, "ais_temperatures": 1000})
    values = {v.name: v for v in evaluate(model, dataset, ctx, only=["exact_nll", "vlb_nll"])}
    assert values["nll"].kind == "exact"
    assert values["vlb_nll"].value > values["nll"].value  # the bound is below log p(x)
    assert values["vlb_nll"].value - values["nll"].value < 15  # and not vacuous
    assert values["nll"].value < 40  # better than the uniform 64 log 2 = 44.4 nats
    # the metric's AIS branch (used when the top RBM is too large to enumerate) agrees with
    # the enumerated one: same q-samples (same seed), log Z_top from AIS instead
    model.exact_bound_log_partition = lambda: None
    with_ais = evaluate(model, dataset, ctx, only=["vlb_nll"])[0]
    assert with_ais.protocol["ais_temperatures"] == 1000 and "log_z_plus_3sd" in with_ais.protocol
    assert abs(with_ais.value - values["vlb_nll"].value) < 0.1


def _autograd_training_step(model, x, optimizers):
    """The DBN's training step before the direct CD statistics: autograd through the current
    layer's free-energy surrogate (the reference of the test below)."""
    index = model.current_layer
    layer = model.layers[index]
    data = model.up(x.flatten(1), index)
    if not bool(model.layer_started[index]):
        with torch.no_grad():
            p = data.mean(0).clamp(0.01, 0.99)
            layer.visible_bias.copy_(torch.log(p) - torch.log1p(-p))
        model.layer_started[index] = True
    optimizer = optimizers[f"layer{index}"]
    optimizer.zero_grad(set_to_none=True)
    loss = layer.contrastive_divergence_loss(data, model.negative_phase(index, data))
    loss.backward()
    optimizer.step()
    model.updates_done += 1
    return loss.item()


def test_direct_cd_updates_equal_the_autograd_surrogate_updates_in_every_layer():
    """Both layers trained (3 updates each) with PCD-2, same generator state before every
    step: the parameters equal the autograd formulation's to 1e-6."""
    data = load_dataset("digits/binary").split("train")
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        models.append(build_model("dbn", load_dataset("digits/binary").info, hidden=(20, 12),
                                  updates_per_layer=3, persistent=True, pcd_chains=25, k=2, init_std=0.1))
    train = TrainConfig(lr=0.1, batch_size=40, weight_decay=1e-3)
    optimizers = [model.configure_optimizers(train) for model in models]
    for step in range(6):
        batch = data[step * 40 : (step + 1) * 40]
        torch.manual_seed(7 + step)
        gap = models[0].training_step(batch, optimizers[0], train)["free_energy_gap"]
        torch.manual_seed(7 + step)
        assert abs(gap - _autograd_training_step(models[1], batch, optimizers[1])) < 1e-4
    assert models[0].current_layer == 1 and int(models[0].updates_done) == 6
    for (name, got), expected in zip(models[0].named_parameters(), models[1].parameters()):
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)
    for name, buffer in models[0].named_buffers():
        torch.testing.assert_close(buffer, dict(models[1].named_buffers())[name], rtol=0, atol=0, msg=name)
