"""pytest-benchmark: one full alternation round of every adversarial model, i.e. n_critic
discriminator updates and the one generator update they lead to (the generic
per-model benchmark times a single training_step call, which is one discriminator update),
at the quick-suite size on digits. Run with ``pytest tests/benchmarks --benchmark-only``."""
import pytest

from dgmbench.benchmarking import BATCH, devices, quick_models, setup_bench
from dgmbench.models.base import MODELS
from dgmbench.models.gans.layers.adversarial import AdversarialModel

ADVERSARIAL = [name for name in quick_models() if issubclass(MODELS.get(name), AdversarialModel)]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("model", ADVERSARIAL)
def test_alternation_round(benchmark, model, device):
    bench = setup_bench(model, device)
    # align with the cycle, so that each round ends with exactly one generator update
    while int(bench.model.critic_since_generator) != 0:
        bench.training_step()
    n_critic = bench.model.critic_iterations(int(bench.model.generator_updates))

    def round_():
        before = int(bench.model.generator_updates)
        for _ in range(n_critic):
            bench.training_step()
        assert int(bench.model.generator_updates) == before + 1

    benchmark.extra_info.update(batch=BATCH, device=device, n_critic=n_critic)
    benchmark.pedantic(round_, rounds=5, iterations=1, warmup_rounds=1)
