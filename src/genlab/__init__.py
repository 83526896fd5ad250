"""genlab: numerical experiments on deep-learning generalization (probes, training regimes, studies)."""

__version__ = "0.1.0"
