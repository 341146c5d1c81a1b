"""Adversarial and other implicit models: a generator x = G(z), z ~ p(z), that can only be
sampled, trained against a discriminator/critic (GAN, DCGAN, WGAN, WGAN-GP, LSGAN) or by a
kernel two-sample statistic (GMMN). Shared machinery (alternating updates, losses,
networks, Salimans et al. 2016's improved techniques) lives in ``gans/layers/``."""
