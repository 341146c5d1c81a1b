"""IAF: Inverse Autoregressive Flow (Kingma, Salimans, Jozefowicz, Chen, Sutskever &
Welling, NeurIPS 2016) as a density model.

Generative direction, noise z -> data, K layers of (eq. 14-15, the numerically stable
gated form of Sec. 4 / Algorithm 1):

    x_i = sigma_i z_i + (1 - sigma_i) m_i(z_<i),   sigma_i = sigmoid(s_i(z_<i)),
    log|det dx/dz| = sum_i log sigma_i,

m and s from a MADE network of the *input* z, with orderings reversed between layers; base
N(0, I). The transform is ``InverseTransform`` of the layer MAF would use (see
transforms/autoregressive.py): no parameters are copied.

Cheap direction: sampling. Every m_i, s_i depends on the noise z, all of which is drawn up
front, so x comes out of one masked pass per layer. Evaluating log p(x) for a given x must
recover z_i from x_i and z_<i, one dimension at a time: D sequential passes per layer. That
is the opposite trade-off from MAF, and why the paper uses IAF for posteriors (where only
samples and their own density are needed: z = layer(eps), log q(z) = log q0(eps) - log|det|,
one pass) rather than for density estimation. This model exists to compare the two at equal
size; the defaults mirror MAF's reference configuration (the IAF paper has no density-model
configuration).

Scale: the gated layer only contracts in the generative direction (0 < sigma < 1), so on
its own it cannot reach data wider than its N(0, I) base (logit-space pixels spread over
about +-14). With ``batch_norm`` (default) a batch-normalisation bijection standardises the
data first (running statistics at evaluation), as MAF's batch norm does between layers.
"""
from __future__ import annotations

from dataclasses import dataclass

from dgmbench.models.base import register_model
from dgmbench.models.flows.flow import FlowModel
from dgmbench.models.flows.maf import autoregressive_stack
from dgmbench.models.flows.transforms import BatchNormBijection, Chain, InverseTransform


@register_model("iaf")
class IAF(FlowModel):
    @dataclass
    class Config:
        num_layers: int = 5
        hidden_sizes: tuple[int, ...] = (1024,)
        logit_alpha: float | None = 1e-6
        batch_norm: bool = True  # a batch-norm bijection on the data side (see docstring)
        mask_seed: int = 0

    citation = (
        "Kingma, D. P., Salimans, T., Jozefowicz, R., Chen, X., Sutskever, I. & Welling, M. "
        "(2016). Improved Variational Inference with Inverse Autoregressive Flow. NeurIPS."
    )
    train_defaults = {"lr": 1e-4, "batch_size": 100, "weight_decay": 1e-6, "patience": 30}

    def transform(self):
        c = self.config
        if c.num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {c.num_layers}")
        generative = autoregressive_stack(self.info.dim, c.num_layers, c.hidden_sizes, "iaf", False, c.mask_seed)
        # data -> noise runs the generative layers backwards, each inverted
        layers = [InverseTransform(layer) for layer in reversed(generative)]
        return Chain([BatchNormBijection(self.info.dim), *layers] if c.batch_norm else layers)

    @classmethod
    def quick_config(cls, info):
        return {"num_layers": 2, "hidden_sizes": (64,)}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 3, "lr": 1e-3}
