"""hicgen: heavy-ion events from diffusion models."""

__version__ = "0.1.0"

__all__ = ["__version__", "generate"]


def __getattr__(name: str):
    """Lazy public API, so that `import hicgen` stays light (no torch until it is used)."""
    if name == "generate":
        from hicgen.engine.generate import generate

        return generate
    raise AttributeError(f"module 'hicgen' has no attribute '{name}'")
