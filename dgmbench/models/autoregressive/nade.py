"""Neural Autoregressive Distribution Estimator (Larochelle & Murray 2011).

    p(x) = prod_d p(x_{o_d} | x_{o_<d}),
    h_d  = sigmoid(c + W_{:, o_<d} x_{o_<d})                       (eq. 5)
    p(x_{o_d} = 1 | x_{o_<d}) = sigmoid(b_d + V_d . h_d)

The hidden pre-activations share weights across positions, a_{d+1} = a_d + W_{:, o_d} x_{o_d},
so every conditional costs O(H): O(DH) per example in all (section 2.2, Algorithm 1).

Two custom autograd functions run that recurrence without ever holding the (n, D, H)
hidden states (157 MB at batch 100 for D = 784, H = 500):

* ``NADERecurrence`` (log_prob, and any gradient of it): the dimensions are walked in blocks
  of BLOCK and the examples in chunks of CHUNK, so that each block's hidden states stay in
  cache; the backward pass walks the blocks in reverse, recomputes their hidden states and
  accumulates dL/da over the later dimensions (delta a in Algorithm 1).
* ``NADEMeanNLL`` (the training loss): the gradient of each output depends on that
  dimension alone, so loss and gradients come out of one forward sweep (see its docstring).

Memory O(n H + BLOCK CHUNK H) instead of O(n D H). Sampling carries a_d one dimension at a
time over the whole batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from dgmbench.models.base import ExactLikelihood, GenerativeModel, register_model
from dgmbench.models.autoregressive.fvsbn import make_ordering

BLOCK = 16  # dimensions whose hidden states exist at once
CHUNK = 128  # examples per pass on CPU, so that a block's (BLOCK, CHUNK, H) states stay in cache


class NADERecurrence(torch.autograd.Function):
    """out[:, d] = h_d @ U_d with h_d = sigmoid(rho_d a_d), a_d = c + sum_{j<d} W[:, j] x_j.

    x (n, D), W (H, D), c (H,), U (D, H, O), rho (D,) or None  ->  out (n, D, O).
    Shared by NADE (O = 1, no rho) and RNADE (O = 3K mixture parameters, rho_d rescaling).

    Forward and backward run the recurrence a_{d+1} = a_d + W[:, d] x_d one dimension at a
    time over a block of BLOCK dimensions and CHUNK examples; the per-block work (sigmoid,
    output products, their gradients) runs on the whole block at once. The pre-activation
    at the start of each block is carried in float64, so that the backward pass, walking
    the blocks in reverse, peels them off again (a_k = a_{k+1} - x_k W_k^T) and recovers
    after rounding exactly the forward pass's pre-activations without storing one per block.
    Memory: O(n H) (the carry) plus O(BLOCK CHUNK H) working states.
    """

    @staticmethod
    def forward(ctx, x, W, c, U, rho):
        n, dim = x.shape
        Wt = W.T.contiguous()  # (D, H): row j is W[:, j]
        out = x.new_empty(n, dim, U.shape[-1])
        carries = []
        for rows in _chunks(x):
            xc = x[rows]
            carry = c.to(torch.float64).expand(len(xc), -1).clone()
            work = _workspace(xc, W.shape[0], rho)
            for start, stop in _blocks(dim):
                _, hidden = _block_states(xc, Wt, rho, carry, start, stop, work)
                out[rows, start:stop] = _project(hidden, U[start:stop], work).transpose(0, 1)
                carry += (xc[:, start:stop] @ Wt[start:stop]).to(torch.float64)
            carries.append(carry)
        ctx.save_for_backward(x, W, U, rho, torch.cat(carries))
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, W, U, rho, carries = ctx.saved_tensors
        n, dim = x.shape
        Wt = W.T.contiguous()
        grad_Wt, grad_U = torch.zeros_like(Wt), torch.zeros_like(U)
        grad_c = torch.zeros_like(W[:, 0])
        grad_rho = None if rho is None else torch.zeros_like(rho)
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        for rows in _chunks(x):
            xc, carry = x[rows], carries[rows].clone()
            later = xc.new_zeros(len(xc), W.shape[0])  # dL/da at the end of the current block
            work = _workspace(xc, W.shape[0], rho)
            for start, stop in reversed(_blocks(dim)):
                carry -= (xc[:, start:stop] @ Wt[start:stop]).to(torch.float64)
                pre, hidden = _block_states(xc, Wt, rho, carry, start, stop, work)
                grad_block = grad_out[rows, start:stop].transpose(0, 1).contiguous()  # (B, chunk, O)
                grad_U[start:stop] += torch.bmm(grad_block.transpose(1, 2), hidden).transpose(1, 2)
                grad_pre, scale = _pre_activation_grad(
                    grad_block, hidden, pre, U[start:stop], rho, start, stop, grad_rho, work
                )
                # Reverse inclusive sum in place: grad_pre[j] becomes sum_{d >= j} dL/da_d, and
                # x_j reaches a_d for every d > j in this block and every later block.
                rows_of_grad = grad_pre.unbind(0)
                if scale is not None:
                    rows_of_grad[-1].mul_(scale[-1])
                for j in range(stop - start - 2, -1, -1):
                    if scale is None:
                        rows_of_grad[j].add_(rows_of_grad[j + 1])
                    else:
                        torch.addcmul(rows_of_grad[j + 1], rows_of_grad[j], scale[j], out=rows_of_grad[j])
                x_block = xc[:, start:stop]
                grad_Wt[start:stop] += x_block.T @ later
                grad_Wt[start : stop - 1] += torch.bmm(x_block.T[:-1, None, :], grad_pre[1:]).squeeze(1)
                if grad_x is not None:
                    grad_x[rows, start:stop] += later @ Wt[start:stop].T
                    grad_x[rows, start : stop - 1] += (grad_pre[1:] * Wt[start : stop - 1, None]).sum(-1).T
                later += grad_pre[0]
            grad_c += later.sum(0)
        return grad_x, grad_Wt.T.contiguous(), grad_c, grad_U, grad_rho


class NADEMeanNLL(torch.autograd.Function):
    """Training loss in one sweep: mean over the batch of -log p(x), and its gradient.

    Same recurrence and arguments as ``NADERecurrence``, plus ``head(out, x_block, start,
    stop, *head_params)``, the summed negative log-likelihood of dimensions start..stop-1
    given their outputs (B, n, O), differentiable in ``out`` and in ``head_params`` (output
    biases), or the tuple (NLL, dNLL/d out, [dNLL/d head_param, ...]) when the head
    differentiates itself (cheaper than autograd for small blocks). The output gradient of a dimension depends on that dimension only, so every
    gradient is accumulated while sweeping forward: the gradient reaching x_j through the
    pre-activations of the later dimensions is sum_{d>j} dL/da_d = T - C_j, the total T
    over all dimensions minus the running prefix C_j, and the T part is one matrix product
    X^T T at the end. One pass instead of a forward and a recomputing backward pass; the
    gradients (parameter-sized) wait in ctx and are scaled by the incoming gradient.
    """

    @staticmethod
    def forward(ctx, head, x, W, c, U, rho, *head_params):
        n, dim = x.shape
        Wt = W.T.contiguous()
        grad_Wt, grad_U = torch.zeros_like(Wt), torch.zeros_like(U)
        grad_c = torch.zeros_like(c)
        grad_rho = None if rho is None else torch.zeros_like(rho)
        grad_head = [torch.zeros_like(p) for p in head_params]
        total = x.new_zeros(())
        for rows in _chunks(x):
            xc = x[rows]
            carry = c.to(torch.float64).expand(len(xc), -1).clone()
            prefix = xc.new_zeros(len(xc), W.shape[0])  # C: sum of dL/da_d over the dimensions so far
            work = _workspace(xc, W.shape[0], rho)
            for start, stop in _blocks(dim):
                pre, hidden = _block_states(xc, Wt, rho, carry, start, stop, work)
                out = _project(hidden, U[start:stop], work)
                with torch.enable_grad():
                    out_leaf = out.detach().requires_grad_()
                    params = [p.detach().requires_grad_() for p in head_params]
                    nll = head(out_leaf, xc[:, start:stop], start, stop, *params)
                    if isinstance(nll, tuple):  # the head gave its own gradients
                        nll, grad_out, grads = nll
                        grad_out, grads = grad_out / n, [None if g is None else g / n for g in grads]
                    else:
                        grad_out, *grads = torch.autograd.grad(nll / n, [out_leaf, *params], allow_unused=True)
                total += nll.detach()
                for accumulated, grad in zip(grad_head, grads):
                    if grad is not None:
                        accumulated += grad
                grad_U[start:stop] += torch.bmm(grad_out.transpose(1, 2), hidden).transpose(1, 2)
                grad_pre, scale = _pre_activation_grad(
                    grad_out, hidden, pre, U[start:stop], rho, start, stop, grad_rho, work
                )
                # Running inclusive prefix in place: grad_pre[j] becomes C_j.
                rows_of_grad = grad_pre.unbind(0)
                for j in range(stop - start):
                    previous = prefix if j == 0 else rows_of_grad[j - 1]
                    if scale is None:
                        rows_of_grad[j].add_(previous)
                    else:
                        torch.addcmul(previous, rows_of_grad[j], scale[j], out=rows_of_grad[j])
                x_block = xc[:, start:stop]
                grad_Wt[start:stop] -= torch.bmm(x_block.T.contiguous()[:, None, :], grad_pre).squeeze(1)
                prefix.copy_(rows_of_grad[-1])  # the scratch buffer is reused by the next block
                carry += (x_block @ Wt[start:stop]).to(torch.float64)
            grad_Wt += xc.T @ prefix
            grad_c += prefix.sum(0)
        # The last dimension's column feeds no hidden state: its gradient is exactly 0, but the
        # two sums above leave rounding noise there, which Adam would normalise into steps of lr.
        grad_Wt[-1] = 0
        ctx.grads = (grad_Wt.T.contiguous(), grad_c, grad_U, grad_rho, *grad_head)
        return total / n

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_loss):
        return None, None, *[None if g is None else g * grad_loss for g in ctx.grads]


def nade_recurrence(x, W, c, U, rho=None):
    """``NADERecurrence`` in the common dtype of the inputs and parameters (as broadcasting
    arithmetic would promote them)."""
    dtype = torch.promote_types(x.dtype, W.dtype)
    cast = [t if t is None else t.to(dtype) for t in (x, W, c, U, rho)]
    return NADERecurrence.apply(*cast)


def nade_mean_nll(head, x, W, c, U, rho, *head_params):
    """``NADEMeanNLL`` in the common dtype of the inputs and parameters."""
    dtype = torch.promote_types(x.dtype, W.dtype)
    cast = [t if t is None else t.to(dtype) for t in (x, W, c, U, rho, *head_params)]
    return NADEMeanNLL.apply(head, *cast)


def _chunks(x: torch.Tensor) -> list[slice]:
    """Rows in chunks of CHUNK on CPU (cache-sized blocks); all at once on a GPU, where
    fewer, larger kernels are what counts."""
    n = len(x)
    size = max(n, 1) if x.device.type == "cuda" else CHUNK
    return [slice(start, min(start + size, n)) for start in range(0, max(n, 1), size)]  # n = 0: one empty chunk


def _blocks(dim: int) -> list[tuple[int, int]]:
    return [(start, min(start + BLOCK, dim)) for start in range(0, dim, BLOCK)]


def _workspace(x, hidden: int, rho) -> dict:
    """Buffers reused by every block of a chunk (fresh multi-megabyte allocations per block
    would cost page faults): pre-activations, hidden states when rho rescales them, scratch."""
    shape = (BLOCK, len(x), hidden)
    return {
        "pre": x.new_empty(shape),
        "hidden": None if rho is None else x.new_empty(shape),
        "scratch": x.new_empty(shape),
    }


def _block_states(x, Wt, rho, carry, start, stop, work):
    """Pre-activations and hidden states of dimensions start..stop-1, laid out (B, n, H),
    from the pre-activation ``carry`` at dimension ``start``."""
    pre = work["pre"][: stop - start]
    rows = pre.unbind(0)
    rows[0].copy_(carry)
    inputs = x[:, start : stop - 1].T.unsqueeze(-1).unbind(0)  # x_j as (n, 1) columns
    for d, (x_j, W_j) in enumerate(zip(inputs, Wt[start : stop - 1].unbind(0)), start=1):
        torch.addcmul(rows[d - 1], x_j, W_j, out=rows[d])
    if rho is None:  # the pre-activations are not needed again: sigmoid in place
        return None, pre.sigmoid_()
    hidden = torch.mul(pre, rho[start:stop, None, None], out=work["hidden"][: stop - start])
    return pre, hidden.sigmoid_()


def _project(hidden, U, work):
    """(B, n, H) hidden states times the per-dimension output weights (B, H, O): (B, n, O)."""
    if U.shape[-1] == 1:  # a batched matrix-vector product is faster as multiply and sum
        product = torch.mul(hidden, U[:, None, :, 0], out=work["scratch"][: len(U)])
        return product.sum(-1, keepdim=True)
    return torch.bmm(hidden, U)


def _pre_activation_grad(grad_out, hidden, pre, U, rho, start, stop, grad_rho, work):
    """dL/da for the block's pre-activations (B, n, H) from dL/d out (B, n, O), as a pair
    (G, scale): dL/da = G, or G * scale[:, None, :] when scale is given, the multiplication
    left to the caller's running sums (addcmul), which saves a pass over the block. Adds
    dL/d rho into grad_rho; overwrites the hidden states' buffer when rho is given."""
    grad = work["scratch"][: stop - start]
    if U.shape[-1] == 1 and rho is None:  # NADE: dL/da_d = V_d * (g_d sigmoid'(a_d))
        return torch.ops.aten.sigmoid_backward(grad_out, hidden, grad_input=grad), U[:, :, 0]
    if U.shape[-1] == 1:
        torch.mul(grad_out, U[:, None, :, 0], out=grad)
    else:
        torch.bmm(grad_out, U.transpose(1, 2), out=grad)
    grad_pre = torch.ops.aten.sigmoid_backward(grad, hidden, grad_input=grad)
    if rho is not None:  # d/d a of sigmoid(rho a) = rho sigmoid'(.), d/d rho = a sigmoid'(.)
        grad_rho[start:stop] += torch.mul(grad_pre, pre, out=hidden).sum((1, 2))
        grad_pre.mul_(rho[start:stop, None, None])
    return grad_pre, None


def _bernoulli_nll(out, x_block, start, stop, b):
    """Summed -log p(x_d | x_<d) of a block, from its (B, n, 1) outputs V_d . h_d, with its
    gradients: d/d logit = sigmoid(logit) - x, for the outputs and for the biases b."""
    logits = out.detach()[:, :, 0].T + b.detach()[start:stop]
    nll = F.binary_cross_entropy_with_logits(logits, x_block, reduction="sum")
    grad_logits = torch.sigmoid(logits) - x_block  # (n, B)
    grad_b = torch.zeros_like(b)
    grad_b[start:stop] = grad_logits.sum(0)
    return nll, grad_logits.T.unsqueeze(-1), [grad_b]


@dataclass
class NADEConfig:
    hidden: int = 500
    ordering: str = "raster"  # "raster" or "random"
    ordering_seed: int = 0


@register_model("nade")
class NADE(GenerativeModel, ExactLikelihood):
    Config = NADEConfig
    family = "autoregressive"
    value_types = ("binary",)
    citation = "Larochelle & Murray (2011), The Neural Autoregressive Distribution Estimator, AISTATS"

    def __init__(self, config: NADEConfig, info):
        super().__init__(config, info)
        d, h = info.dim, config.hidden
        self.register_buffer("order", make_ordering(d, config.ordering, config.ordering_seed))
        self.W = nn.Parameter(torch.randn(h, d) * 0.01)  # input -> hidden, column per dim
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.randn(d, h) * 0.01)  # hidden -> output, row per dim
        self.b = nn.Parameter(torch.zeros(d))

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the D conditionals, in the model's ordering: (n, D)."""
        xo = x.flatten(1)[:, self.order]  # W, V and b are indexed by position in the ordering
        return nade_recurrence(xo, self.W, self.c, self.V[:, :, None])[:, :, 0] + self.b

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        xo = x.flatten(1)[:, self.order]
        return -F.binary_cross_entropy_with_logits(self.logits(x), xo, reduction="none").sum(1)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood; with gradients, in NADEMeanNLL's single sweep."""
        if not torch.is_grad_enabled() or x.requires_grad:
            return -self.log_prob(x).mean()
        xo = x.flatten(1)[:, self.order]
        return nade_mean_nll(_bernoulli_nll, xo, self.W, self.c, self.V[:, :, None], None, self.b)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        d = self.info.dim
        pre = self.c.expand(n, -1).clone()
        xo = torch.zeros(n, d, device=self.device)
        for i in range(d):
            p = torch.sigmoid(torch.sigmoid(pre) @ self.V[i] + self.b[i])
            xo[:, i] = torch.bernoulli(p)
            pre += xo[:, i : i + 1] * self.W[:, i]
        x = torch.empty_like(xo)
        x[:, self.order] = xo
        return x.view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"hidden": 64}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 15, "lr": 3e-3}
