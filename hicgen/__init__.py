"""hicgen: heavy-ion events from diffusion models."""

__version__ = "0.1.0"
