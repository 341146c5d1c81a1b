"""Invertible transforms for normalising flows; see :mod:`.base` for the protocol
(forward = data -> noise with log|det J|, inverse = noise -> data)."""
from dgmbench.models.flows.transforms.autoregressive import MaskedAutoregressiveAffine, reversed_ordering  # noqa: F401
from dgmbench.models.flows.transforms.base import Chain, InverseTransform, Transform, sum_except_batch  # noqa: F401
from dgmbench.models.flows.transforms.coupling import (  # noqa: F401
    ChannelCoupling,
    Coupling,
    alternating_mask,
    channel_mask,
    checkerboard_mask,
)
from dgmbench.models.flows.transforms.elementwise import (  # noqa: F401
    ActNorm,
    BatchNormBijection,
    DiagonalScaling,
    ElementwiseAffine,
    FixedAffine,
    Logit,
)
from dgmbench.models.flows.transforms.image import InvertibleConv1x1, MultiScale, Squeeze  # noqa: F401
from dgmbench.models.flows.transforms.planar import Planar, Radial  # noqa: F401
