"""asv: training-step and sampling time for every registered model (quick-suite size on
digits, batch of 100, 64 samples), on CPU and on CUDA when present."""
from dgmbench.benchmarking import devices, quick_models, setup_bench


class Models:
    params = (quick_models(), devices())
    param_names = ("model", "device")
    timeout = 300

    def setup(self, model, device):
        self.bench = setup_bench(model, device)

    def time_training_step(self, model, device):
        self.bench.training_step()

    def time_sample_64(self, model, device):
        self.bench.sample()
