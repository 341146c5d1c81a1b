"""DRAW (Gregor, Danihelka, Graves, Rezende & Wierstra 2015, "DRAW: A Recurrent Neural
Network For Image Generation"): a sequential VAE whose recurrent encoder reads the image and
the current error through a Gaussian attention window, and whose recurrent decoder adds to a
canvas through a second window, over T steps.

For t = 1..T (Sec. 2, eq. 3-8), with c_0 = 0 and h^dec_0 = 0:

    x^_t    = x - sigmoid(c_{t-1})                                  error image
    r_t     = read(x, x^_t, h^dec_{t-1})
    h^enc_t = LSTM^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}])
    z_t     ~ Q(z_t | h^enc_t) = N(mu(h^enc_t), diag sigma^2(h^enc_t))
    h^dec_t = LSTM^dec(h^dec_{t-1}, z_t)
    c_t     = c_{t-1} + write(h^dec_t)

p(x | z_{1:T}) = Bernoulli(sigmoid(c_T)), p(z_t) = N(0, I). The bound (eq. 9-12):

    ELBO(x) = E_Q[log p(x | c_T)] - sum_t KL(Q(z_t | h^enc_t) || N(0, I))

with the KL of each step in closed form given the sampled history. The importance-weighted
bound uses the whole sequence as proposal: log w = log p(x|c_T) + sum_t [log N(z_t; 0, I) -
log Q(z_t | h^enc_t)].

Attention (Sec. 3.2, eq. 19-26): an N x N grid of isotropic 2-D Gaussian filters, centred at
(g_X, g_Y) with stride delta and variance sigma^2, emitted by a linear map of h^dec:
    g_X = (A + 1)/2 (g~_X + 1),  g_Y = (B + 1)/2 (g~_Y + 1),  delta = (max(A, B) - 1)/(N - 1) delta~
    mu^i_X = g_X + (i - N/2 - 0.5) delta,  F_X[i, a] = exp(-(a - mu^i_X)^2 / (2 sigma^2)) / Z_X
    read = gamma [F_Y x F_X^T, F_Y x^ F_X^T],  write = (1/gamma^) F^_Y^T w_t F^_X
Without attention, read = [x, x^] and write = a linear map of h^dec to the whole image.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model


def filterbank(g_x, g_y, log_var, log_delta, n: int, height: int, width: int):
    """F_Y (m, N, B) and F_X (m, N, A) for window parameters of shape (m,) (eq. 19-26);
    g_x, g_y are already in image coordinates and delta is the stride."""
    grid = torch.arange(n, dtype=g_x.dtype, device=g_x.device) - n / 2 - 0.5 + 1  # i - N/2 - 0.5, i = 1..N
    delta = log_delta.exp()[:, None]
    mu_x = g_x[:, None] + grid * delta  # (m, N)
    mu_y = g_y[:, None] + grid * delta
    a = torch.arange(width, dtype=g_x.dtype, device=g_x.device)
    b = torch.arange(height, dtype=g_x.dtype, device=g_x.device)
    var = log_var.exp()[:, None, None]
    f_x = torch.exp(-((a - mu_x[..., None]) ** 2) / (2 * var))
    f_y = torch.exp(-((b - mu_y[..., None]) ** 2) / (2 * var))
    f_x = f_x / f_x.sum(-1, keepdim=True).clamp(min=1e-8)  # Z_X: each filter sums to 1
    f_y = f_y / f_y.sum(-1, keepdim=True).clamp(min=1e-8)
    return f_y, f_x


class Attention(nn.Module):
    """Emits the window (g~_X, g~_Y, log sigma^2, log delta~, log gamma) from h^dec."""

    def __init__(self, hidden: int, n: int, height: int, width: int):
        super().__init__()
        self.n, self.height, self.width = n, height, width
        self.params = nn.Linear(hidden, 5)

    def window(self, h: torch.Tensor):
        gx_, gy_, log_var, log_delta_, log_gamma = self.params(h).unbind(-1)
        g_x = (self.width + 1) / 2 * (gx_ + 1) - 1  # 0-based pixel coordinates
        g_y = (self.height + 1) / 2 * (gy_ + 1) - 1
        stride = (max(self.height, self.width) - 1) / max(self.n - 1, 1)
        log_delta = math.log(stride) + log_delta_
        f_y, f_x = filterbank(g_x, g_y, log_var, log_delta, self.n, self.height, self.width)
        return f_y, f_x, log_gamma.exp()


@dataclass
class DRAWConfig:
    steps: int = 64  # T glimpses (Gregor et al. MNIST with attention)
    hidden: int = 256  # LSTM units of the encoder and of the decoder
    latent: int = 100  # z_t per step
    attention: bool = True
    read_size: int = 2  # N of the read window (2 x 2)
    write_size: int = 5  # N of the write window (5 x 5)
    iwae_chunk: int = 100  # importance samples per pass (each runs the whole recurrence)


@register_model("draw")
class DRAW(GenerativeModel, LowerBound):
    Config = DRAWConfig
    family = "latent"
    value_types = ("binary",)
    citation = "Gregor, Danihelka, Graves, Rezende & Wierstra (2015), DRAW: A Recurrent Neural Network For Image Generation, ICML"

    def __init__(self, config: DRAWConfig, info):
        super().__init__(config, info)
        if not info.is_image or info.shape[0] != 1:
            raise ValueError(f"DRAW models single-channel images (1, H, W); got shape {info.shape}")
        if min(config.steps, config.hidden, config.latent, config.read_size, config.write_size) < 1:
            raise ValueError("steps, hidden, latent, read_size and write_size must be >= 1")
        _, self.height, self.width = info.shape
        h, d = config.hidden, info.dim
        read_dim = 2 * config.read_size**2 if config.attention else 2 * d
        self.encoder_rnn = nn.LSTMCell(read_dim + h, h)
        self.decoder_rnn = nn.LSTMCell(config.latent, h)
        self.posterior = nn.Linear(h, 2 * config.latent)
        if config.attention:
            self.read_attention = Attention(h, config.read_size, self.height, self.width)
            self.write_attention = Attention(h, config.write_size, self.height, self.width)
            self.write_patch = nn.Linear(h, config.write_size**2)
        else:
            self.write_patch = nn.Linear(h, d)

    def read(self, x, x_error, h_dec):
        if not self.config.attention:
            return torch.cat([x, x_error], -1)
        f_y, f_x, gamma = self.read_attention.window(h_dec)
        images = torch.stack([x, x_error], 1).view(len(x), 2, self.height, self.width)
        glimpse = f_y[:, None] @ images @ f_x[:, None].transpose(-1, -2)  # (m, 2, N, N)
        return gamma[:, None] * glimpse.flatten(1)

    def write(self, h_dec):
        patch = self.write_patch(h_dec)
        if not self.config.attention:
            return patch
        n = self.config.write_size
        f_y, f_x, gamma = self.write_attention.window(h_dec)
        image = f_y.transpose(-1, -2) @ patch.view(-1, n, n) @ f_x  # (m, B, A)
        return image.flatten(1) / gamma[:, None]

    def run(self, x: torch.Tensor):
        """One pass of the recurrence on x (m, D): (log p(x|c_T), sum_t KL_t, sum_t log N(z_t;
        0, I) - log Q(z_t|.)), each (m,)."""
        m, h = len(x), self.config.hidden
        zeros = x.new_zeros(m, h)
        enc, dec = (zeros, zeros), (zeros, zeros)
        canvas = x.new_zeros(m, x.shape[1])
        kl = x.new_zeros(m)
        log_ratio = x.new_zeros(m)
        for _ in range(self.config.steps):
            error = x - torch.sigmoid(canvas)
            r = self.read(x, error, dec[0])
            enc = self.encoder_rnn(torch.cat([r, dec[0]], -1), enc)
            mean, log_var = self.posterior(enc[0]).chunk(2, -1)
            eps = torch.randn_like(mean)
            z = mean + eps * (0.5 * log_var).exp()
            kl = kl + 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1)
            log_ratio = log_ratio + (-0.5 * z.pow(2) + 0.5 * eps.pow(2) + 0.5 * log_var).sum(-1)
            dec = self.decoder_rnn(z, dec)
            canvas = canvas + self.write(dec[0])
        log_px = -F.binary_cross_entropy_with_logits(canvas, x, reduction="none").sum(-1)
        return log_px, kl, log_ratio

    def elbo(self, x: torch.Tensor) -> Bound:
        reconstruction, kl, _ = self.run(x.flatten(1))
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        x = x.flatten(1)
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            m = min(self.config.iwae_chunk, k - start)
            log_px, _, log_ratio = self.run(x.repeat(m, 1))
            chunks.append((log_px + log_ratio).view(m, len(x)))
        return torch.logsumexp(torch.cat(chunks), 0) - math.log(k)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        return -self.elbo(x).elbo.mean()

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        zeros = torch.zeros(n, self.config.hidden, device=self.device)
        dec = (zeros, zeros)
        canvas = torch.zeros(n, self.info.dim, device=self.device)
        for _ in range(self.config.steps):
            dec = self.decoder_rnn(torch.randn(n, self.config.latent, device=self.device), dec)
            canvas = canvas + self.write(dec[0])
        return torch.bernoulli(torch.sigmoid(canvas)).view(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        # 8 x 8 digits: attention buys nothing at this size, and the attentive variant sits
        # in the collapsed optimum (KL = 0) for longer than the quick suite trains
        return {"steps": 3, "hidden": 96, "latent": 8, "attention": False}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "lr": 3e-3}
