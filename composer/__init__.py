"""composer: folk melody composition with a dual-GRU rhythm/pitch model."""

__version__ = "0.1.0"
