"""Building blocks shared by the adversarial models: the alternating-update base class
(:mod:`.adversarial`), the players' losses (:mod:`.losses`), the MLP and DCGAN networks
(:mod:`.networks`) and the improved-training layers of Salimans et al. 2016
(:mod:`.improved`)."""
