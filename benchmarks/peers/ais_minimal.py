"""A minimal AIS loop for log Z of a binary RBM, the design of Salakhutdinov & Murray's
RBM_AIS.m (www.cs.toronto.edu/~rsalakhu/rbm_ais.html) as most ports write it: at every
inverse temperature, add log f_beta(v) - log f_{beta_prev}(v) (bias mix and two softplus
sums), then one Gibbs sweep at beta; float32 tensors, log-weights summed in float64.
Written here from that description as the peer our AIS is timed against; same path
(base-rate model with uniform hiddens), same schedule, so it estimates the same log Z."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


@torch.no_grad()
def minimal_ais_log_z(weight, visible_bias, hidden_bias, base_probs, betas, chains, generator=None) -> float:
    W, b, c = weight.float(), visible_bias.float(), hidden_bias.float()
    base_bias = torch.logit(base_probs.double()).float().to(W.device)
    betas = [float(beta) for beta in betas]

    def log_f(v, beta):
        return (v @ ((1 - beta) * base_bias + beta * b) + F.softplus(beta * (v @ W + c)).sum(1)).double()

    device = W.device
    v = (torch.rand(chains, W.shape[0], generator=generator, device=device) < torch.sigmoid(base_bias)).float()
    log_w = torch.zeros(chains, dtype=torch.float64, device=device)
    for beta_prev, beta in zip(betas[:-1], betas[1:]):
        log_w += log_f(v, beta) - log_f(v, beta_prev)
        if beta < 1.0:
            p_h = torch.sigmoid(beta * (v @ W + c))
            h = (torch.rand(p_h.shape, generator=generator, device=device) < p_h).float()
            p_v = torch.sigmoid((1 - beta) * base_bias + beta * (h @ W.T + b))
            v = (torch.rand(p_v.shape, generator=generator, device=device) < p_v).float()
    log_z_base = float(F.softplus(base_bias.double()).sum()) + W.shape[1] * math.log(2.0)
    return float(torch.logsumexp(log_w, 0)) - math.log(chains) + log_z_base
