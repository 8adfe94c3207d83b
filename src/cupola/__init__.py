"""cupola: a self-hosted, Foundry-compatible agent platform."""

__version__ = "0.1.0"
