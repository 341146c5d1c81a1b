"""The DBM's evaluation (metric ``dbm_vlb``): the negated mean-field variational bound with
AIS log Z, and the exact NLL by enumeration when both hidden layers are small.

    log p(v) >= E_q[log p~(v, h)] + H(q) - log Z        (Salakhutdinov & Hinton 2009, Sec. 3)

The model provides the bound (``unnormalized_bound``), the AIS path over (v, h2) with h1
summed out (``annealing_path``) and the enumerations (``exact_log_partition``,
``exact_unnormalized_log_prob``); this module only combines them (see
dgmbench/models/energy/dbm.py for the math).
"""
from __future__ import annotations

import math

import torch

from dgmbench.metrics import ais
from dgmbench.metrics.base import MetricValue, register_metric
from dgmbench.models.energy.dbm import DeepBoltzmannMachine


# Exact NLL costs 2^H1 terms once (log Z) and 2^H2 terms per test example (log p~(v)).
EXACT_MAX_HIDDEN1, EXACT_MAX_HIDDEN2 = 20, 16


class DBMVariationalBound:
    """`vlb_nll`: -(E_q[log p~(v,h)] + H(q) - log Z_AIS), mean over the split, and, when
    both hidden layers are small enough to enumerate, the exact `nll`."""

    name = "dbm_vlb"

    def applies(self, model, dataset) -> bool:
        return isinstance(model, DeepBoltzmannMachine)

    @torch.no_grad()
    def __call__(self, model: DeepBoltzmannMachine, dataset, ctx) -> list[MetricValue]:
        device = model.device
        pseudocount = ctx.setting("ais_pseudocount", ais.DEFAULT_PSEUDOCOUNT)
        base = ais.base_rate(dataset.split("train"), "binary", pseudocount)
        default_temperatures = ais.QUICK_TEMPERATURES if ctx.quick else ais.STANDARD_TEMPERATURES
        temperatures = ctx.setting("ais_temperatures", default_temperatures)
        generator = torch.Generator(device=device).manual_seed(ctx.seed * 1_000_003 + 17)
        result = ais.run_ais(
            model.annealing_path(base),
            ais.schedule(temperatures),
            chains=ctx.setting("ais_chains", ais.DEFAULT_CHAINS),
            generator=generator,
        )

        x = dataset.split(ctx.split)
        steps = model.config.eval_mean_field_steps
        bound = torch.cat(
            [model.unnormalized_bound(batch.to(device)).double() for batch in x.split(ctx.batch_size)]
        ).cpu()
        neg_bound = result.log_z - bound
        protocol = {
            "estimator": "mean-field variational bound with AIS log Z (a stochastic estimate of a bound)",
            "mean_field_steps": steps,
            "ais_scheme": "states (v, h2), h1 summed out; base-rate model over v, uniform h2",
            **result.protocol(),
            "ais_base_pseudocount": pseudocount,
            "ais_schedule": "salakhutdinov_murray_2008",
            "split": ctx.split,
        }
        values = [
            MetricValue(
                name="vlb_nll",
                value=neg_bound.mean().item(),
                unit="nats",
                n=len(x),
                stderr=(neg_bound.std() / math.sqrt(len(x))).item() if len(x) > 1 else None,
                kind="estimate",
                protocol=protocol,
            )
        ]
        max_h1 = ctx.setting("exact_max_hidden1", EXACT_MAX_HIDDEN1)
        max_h2 = ctx.setting("exact_max_hidden2", EXACT_MAX_HIDDEN2)
        if model.config.hidden1 <= max_h1 and model.config.hidden2 <= max_h2:
            log_z = model.exact_log_partition(max_h1)
            log_p_tilde = [
                model.exact_unnormalized_log_prob(batch.to(device), max_h2) for batch in x.split(ctx.batch_size)
            ]
            log_p = torch.cat(log_p_tilde).cpu() - log_z
            values.append(
                MetricValue(
                    name="nll",
                    value=-log_p.mean().item(),
                    unit="nats",
                    n=len(x),
                    stderr=(log_p.std() / math.sqrt(len(x))).item() if len(x) > 1 else None,
                    kind="exact",
                    protocol={"estimator": "enumeration over h1 (log Z) and h2 (log p~(v))", "log_z": log_z,
                              "split": ctx.split},
                )
            )
        return values


register_metric(DBMVariationalBound())
