"""Run defaults, importable without torch (the CLI reads them to build its help text)."""

SAMPLER_NAMES: tuple[str, ...] = ("ddim", "dpm++2m", "heun")  # = tuple(hicgen.diffusion.samplers.SAMPLERS), tested
DEFAULT_SAMPLER = "dpm++2m"
DEFAULT_STEPS = 24  # ~2% solver error on Gaussian data (docs/run.md)
DEFAULT_BATCH = {"cpu": 256, "cuda": 8192}  # events per chunk
DEFAULT_TOKENS = {"cpu": 1 << 14, "cuda": 1 << 19}  # particle tokens per network call
# spectra per network batch of `hicgen spectra`: on a CPU small batches stay in cache (batch 32 ran 2.7x as fast as
# 256 on a 2-core VM, docs/benchmarks.md); on CUDA larger ones fill the GPU
DEFAULT_SPECTRA_BATCH = {"cpu": 32, "cuda": 256}
