"""Normalising flows: exact log-densities through invertible maps,

    log p(x) = log p_base(f(x)) + log|det df/dx|.

``transforms/`` holds the invertible-transform protocol (forward = data -> noise with its
log|det J|, inverse = noise -> data) and every layer; ``flow.py`` the base distributions,
:class:`~dgmbench.models.flows.flow.Flow` (base + chain of transforms) and the model class
the registered flows share; ``nets.py`` the coupling networks. One model per file: planar,
radial (Rezende & Mohamed 2015), NICE (Dinh et al. 2015), RealNVP (Dinh et al. 2017), Glow
(Kingma & Dhariwal 2018), MAF (Papamakarios et al. 2017), IAF (Kingma et al. 2016).

Transforms are separate from distributions, so a layer serves elsewhere: planar, radial
and IAF layers (``InverseTransform(MaskedAutoregressiveAffine(..., "iaf"))``'s inverse,
i.e. the layer's forward) map base noise eps to z in one pass with log|det|, which is what a
VAE posterior q(z|x) = q0(eps) / |det dz/deps| needs.
"""
