"""Directed latent-variable models: p(x) = sum_z / integral p(x|z) p(z); trained by EM or variational bounds."""
