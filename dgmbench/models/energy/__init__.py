"""Energy-based models (Boltzmann machines): p(x) = exp(-F(x)) / Z, log Z by AIS/RAISE or enumeration."""
