"""Ground-truth checks shared by the flow tests: exact inversion and the analytic
log|det J| against the autograd Jacobian, in float64, with randomised parameters."""
from __future__ import annotations

import torch


@torch.no_grad()
def randomize(module: torch.nn.Module, seed: int = 0, scale: float = 0.3) -> torch.nn.Module:
    """Every parameter drawn from N(0, scale^2), so each layer really changes volume (a
    freshly initialised flow is often the identity, whose log|det| is 0 whatever the sign
    convention); positive running variances for batch norm."""
    generator = torch.Generator().manual_seed(seed)
    for parameter in module.parameters():
        parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * scale)
    for name, buffer in module.named_buffers():
        if name.endswith("running_var"):
            buffer.copy_(0.5 + torch.rand(buffer.shape, generator=generator, dtype=torch.float64))
        elif name.endswith("running_mean"):
            buffer.copy_(torch.randn(buffer.shape, generator=generator, dtype=torch.float64) * 0.3)
    return module


def jacobian_log_det(fn, x: torch.Tensor) -> torch.Tensor:
    """log|det d fn(x_i) / d x_i| for every example, by autograd on the flattened maps."""
    values = []
    for example in x:
        jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].reshape(-1), example)
        values.append(torch.linalg.slogdet(jac.reshape(jac.shape[0], -1))[1])
    return torch.stack(values)


def full_jacobian(fn, example: torch.Tensor) -> torch.Tensor:
    jac = torch.autograd.functional.jacobian(lambda v: fn(v[None])[0].reshape(-1), example)
    return jac.reshape(jac.shape[0], -1)


def check_transform(transform, x: torch.Tensor, round_trip_tol: float = 1e-5, log_det_tol: float = 1e-6):
    """inverse(forward(x)) = x; forward's log|det| = autograd's; inverse's = its negative."""
    transform = transform.double().eval()
    x = x.double()
    y, log_det = transform(x)
    x_back, inverse_log_det = transform.inverse(y)
    assert torch.allclose(x_back, x, atol=round_trip_tol, rtol=0), (x_back - x).abs().max()
    assert log_det.shape == (len(x),)
    expected = jacobian_log_det(lambda v: transform(v)[0], x)
    assert torch.allclose(log_det, expected, atol=log_det_tol, rtol=0), (log_det, expected)
    assert torch.allclose(inverse_log_det, -log_det, atol=log_det_tol, rtol=0)
    # the inverse's own Jacobian, by autograd at y
    expected_inverse = jacobian_log_det(lambda v: transform.inverse(v)[0], y.detach())
    assert torch.allclose(inverse_log_det, expected_inverse, atol=log_det_tol, rtol=0)
    # the transform changes volume: a test that cannot pass with log|det| == 0 by accident
    assert expected.abs().max() > 1e-3 or getattr(transform, "volume_preserving", False)
    return y, log_det
