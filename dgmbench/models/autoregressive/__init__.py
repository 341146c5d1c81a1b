"""Autoregressive models: log p(x) = sum_i log p(x_i | x_<i), exact and normalised by construction."""
