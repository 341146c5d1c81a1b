"""dgmbench: benchmark and evaluation suite for deep generative models."""

__version__ = "0.1.0"
