"""Layers shared by the autoregressive image models (masked convolutions, output heads)."""
