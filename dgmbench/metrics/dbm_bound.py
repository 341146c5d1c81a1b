"""The DBM's evaluation: metric ``dbm_vlb``, the negated mean-field variational bound with
AIS log Z, and the exact NLL by enumeration when both hidden layers are small; metric
``dbm_raise``, RAISE's conservative estimate (reverse annealing from the data, started from
the mean-field posterior over h2 and weighted for it: DBMAnnealingPath.raise_start).

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
from dgmbench.metrics.base import MetricValue, Setting, register_metric
from dgmbench.models.energy.dbm import DeepBoltzmannMachine


# Exact NLL costs 2^H1 terms once (log Z) and 2^H2 terms per test example (log p~(v)).
EXACT_MAX_HIDDEN1, EXACT_MAX_HIDDEN2 = 20, 16


class DBMVariationalBound:
    """`vlb_nll`: -(E_q[log p~(v,h)] + H(q) - log Z_AIS), mean over the split, and, when
    both hidden layers are small enough to enumerate, the exact `nll`."""

    name = "dbm_vlb"
    settings = {
        **ais.AIS_SETTINGS,
        "exact_max_hidden1": Setting(int, "largest first hidden layer whose exact log p(x) is enumerated", minimum=0),
        "exact_max_hidden2": Setting(int, "largest second hidden layer whose exact log p(x) is enumerated", minimum=0),
    }

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


class DBMRaise:
    """`raise_nll` for a DBM: -mean RAISE estimate of log p(x) over (a seeded subset of) the
    split, reverse annealing from the data through the DBM's path over (v, h2) with h1
    summed out. The reverse chain starts from the mean-field q(h2 | v), corrected for in the
    weight (DBMAnnealingPath.raise_start), so each estimate is a stochastic lower bound on
    log p_fwd(v): kind "bound" (an upper bound on the NLL of the annealing model, in
    expectation), the conservative side of AIS's optimistic estimate."""

    name = "dbm_raise"
    settings = {
        "raise_temperatures": Setting(int, "RAISE inverse temperatures (1000; quick 300)", minimum=3),
        "raise_chains": Setting(int, "reverse chains per test example (1)", minimum=1),
        "raise_examples": Setting(int, "test examples scored (1000; a seeded subset when the split is larger)",
                                  minimum=1),
        "ais_pseudocount": ais.AIS_SETTINGS["ais_pseudocount"],
    }

    def applies(self, model, dataset) -> bool:
        return isinstance(model, DeepBoltzmannMachine)

    @torch.no_grad()
    def __call__(self, model: DeepBoltzmannMachine, dataset, ctx) -> list[MetricValue]:
        device = model.device
        temperatures = ctx.setting("raise_temperatures", 300 if ctx.quick else ais.QUICK_TEMPERATURES)
        chains = ctx.setting("raise_chains", 1)
        max_examples = ctx.setting("raise_examples", 1000)
        pseudocount = ctx.setting("ais_pseudocount", ais.DEFAULT_PSEUDOCOUNT)
        path = model.annealing_path(ais.base_rate(dataset.split("train"), "binary", pseudocount).to(device))
        test = dataset.split(ctx.split)
        subset = torch.randperm(test.shape[0], generator=ctx.generator(23))[:max_examples]
        x = test[subset].flatten(1)
        generator = torch.Generator(device=device).manual_seed(ctx.seed * 1_000_003 + 29)
        betas = ais.schedule(temperatures)
        log_p = torch.cat(
            [
                ais.run_raise(path, batch.to(device), None, betas, chains, generator).cpu()
                for batch in x.split(max(1, ctx.batch_size // chains))
            ]
        )
        n = log_p.numel()
        return [
            MetricValue(
                name="raise_nll",
                value=-log_p.mean().item(),
                unit="nats",
                n=n,
                stderr=(log_p.std() / math.sqrt(n)).item() if n > 1 else None,
                kind="bound",
                protocol={
                    "raise_temperatures": temperatures,
                    "raise_chains_per_example": chains,
                    "raise_examples": n,
                    "raise_whole_split": n == test.shape[0],
                    "raise_subset_seed": ctx.seed,
                    "ais_base_pseudocount": pseudocount,
                    "raise_schedule": "salakhutdinov_murray_2008 shape, reversed",
                    "raise_start": "h2 ~ mean-field q(h2 | v), weighted by p~(v, h2) / q(h2 | v)",
                    "mean_field_steps": model.config.eval_mean_field_steps,
                    "split": ctx.split,
                    "note": "stochastic upper bound (in expectation) on the NLL of the annealing model",
                },
            )
        ]


register_metric(DBMVariationalBound())
register_metric(DBMRaise())
