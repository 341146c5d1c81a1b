"""GAN (Goodfellow et al. 2014): with the optimal discriminator in closed form, the value
V(D*, G) equals -log 4 + 2 JSD (Theorem 1), checked on exact discrete expectations and,
through the model's own discriminator and logged estimate, on two 1-D Gaussians whose JSD
comes from numerical quadrature."""
from __future__ import annotations

import math

import pytest
import torch
from scipy import integrate
from scipy.spatial.distance import jensenshannon
from scipy.stats import norm

from dgmbench.models import build_model
from dgmbench.models.gans.layers.losses import gan_discriminator_loss, gan_generator_loss
from gan_helpers import P, P_COUNTS, Q, Q_COUNTS, as_batch, vector_info


def optimal_logits(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """logit D*(x) = log p(x) / q(x) (Prop. 1)."""
    return (p / q).log()


def test_value_at_optimal_discriminator_is_jensen_shannon_on_discrete_distributions():
    logits = optimal_logits(P, Q).requires_grad_(True)
    loss = gan_discriminator_loss(as_batch(logits, P_COUNTS), as_batch(logits, Q_COUNTS))
    jsd = jensenshannon(P.numpy(), Q.numpy()) ** 2  # scipy returns the square root, base e
    assert -loss.item() == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-12)
    # D* is the maximiser: the gradient of -V in each point's logit vanishes there ...
    (grad,) = torch.autograd.grad(loss, logits)
    assert grad.abs().max() < 1e-12
    # ... and any other discriminator does worse
    for seed in range(5):
        other = optimal_logits(P, Q) + 0.3 * torch.randn(5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        assert gan_discriminator_loss(as_batch(other, P_COUNTS), as_batch(other, Q_COUNTS)) > loss


def test_identical_distributions_give_minus_log_four():
    logits = torch.zeros(5, dtype=torch.float64)  # D* = 1/2 everywhere
    assert gan_discriminator_loss(as_batch(logits, P_COUNTS), as_batch(logits, P_COUNTS)).item() == pytest.approx(math.log(4))


def test_model_discriminator_set_to_optimum_reports_the_jsd_of_two_gaussians():
    """Data N(0, 1), generator N(1, 1): log p/q = 1/2 - x, which a linear critic represents."""
    model = build_model("gan", vector_info(1), d_hidden=(), dropout=0.0, input_dropout=0.0).double()
    with torch.no_grad():
        model.discriminator.head.weight.fill_(-1.0)
        model.discriminator.head.bias.fill_(0.5)
    g = torch.Generator().manual_seed(0)
    real = torch.randn(400_000, 1, generator=g, dtype=torch.float64)
    fake = 1 + torch.randn(400_000, 1, generator=g, dtype=torch.float64)
    loss, scalars = model.discriminator_loss(real, fake)

    def integrand(x):  # JSD(p || q) = 1/2 KL(p || m) + 1/2 KL(q || m)
        p, q = norm.pdf(x), norm.pdf(x, 1)
        m = (p + q) / 2
        return 0.5 * p * math.log(p / m) + 0.5 * q * math.log(q / m)

    jsd = integrate.quad(integrand, -12, 13)[0]
    assert scalars["js_estimate"] == pytest.approx(jsd, abs=3e-3)  # Monte Carlo: se ~ 1e-3
    assert -loss.item() == pytest.approx(-math.log(4) + 2 * jsd, abs=6e-3)


def test_generator_losses_minimax_and_non_saturating():
    logits = torch.tensor([-3.0, 0.0, 2.0])
    d = torch.sigmoid(logits)
    assert gan_generator_loss(logits, saturating=True).item() == pytest.approx(torch.log(1 - d).mean().item(), rel=1e-6)
    assert gan_generator_loss(logits).item() == pytest.approx(-torch.log(d).mean().item(), rel=1e-6)
    # the minimax loss saturates where D confidently rejects samples: a much smaller gradient
    rejected = torch.tensor([-6.0], requires_grad=True)
    (saturating,) = torch.autograd.grad(gan_generator_loss(rejected, saturating=True), rejected)
    (non_saturating,) = torch.autograd.grad(gan_generator_loss(rejected), rejected)
    assert abs(saturating.item()) < 0.01 < 0.99 < abs(non_saturating.item())


def test_one_sided_label_smoothing_is_cross_entropy_with_a_soft_real_target():
    import torch.nn.functional as F

    real, fake = torch.randn(7), torch.randn(9)
    expected = F.binary_cross_entropy_with_logits(real, torch.full_like(real, 0.9)) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    assert gan_discriminator_loss(real, fake, real_target=0.9).item() == pytest.approx(expected.item(), rel=1e-6)


def test_reference_configuration_and_both_losses_train():
    from dgmbench.data.base import DataInfo

    mnist = DataInfo(name="mnist", variant="dequantized", shape=(1, 28, 28), value_type="continuous")
    model = build_model("gan", mnist)
    assert model.config.g_hidden == (1200, 1200) and model.config.maxout_pieces == 5
    assert model.train_defaults["lr"] == 0.1 and model.config.optimizer == "sgd"
    for loss in ("minimax", "non_saturating"):
        torch.manual_seed(0)
        model = build_model("gan", vector_info(2), g_hidden=(16,), d_hidden=(16,), latent=4, generator_loss=loss)
        from dgmbench.models.base import TrainConfig

        train = TrainConfig(lr=1e-3)
        optimizers = model.configure_optimizers(train)
        before = [p.clone() for p in model.generator.parameters()]
        scalars = model.training_step(torch.randn(32, 2), optimizers, train)
        assert set(scalars) >= {"d_loss", "g_loss", "d_real", "d_fake", "js_estimate"}
        assert all(math.isfinite(v) for v in scalars.values())
        assert any(not torch.equal(a, b) for a, b in zip(before, model.generator.parameters()))
    with pytest.raises(ValueError, match="generator_loss"):
        build_model("gan", vector_info(2), generator_loss="wasserstein")
