"""Run defaults, importable without torch (the CLI reads them to build its help text)."""

SAMPLER_NAMES: tuple[str, ...] = ("ddim", "dpm++2m", "heun")  # = tuple(hicgen.diffusion.samplers.SAMPLERS), tested
DEFAULT_SAMPLER = "dpm++2m"
DEFAULT_STEPS = 24  # ~2% solver error on Gaussian data (docs/run.md)
DEFAULT_BATCH = {"cpu": 256, "cuda": 8192}  # events per event-branch call, and at most per chunk
# particles per written chunk, at the model's mean multiplicity: without --batch-size a chunk holds fewer than
# DEFAULT_BATCH events where more would exceed this, so that a CPU writes (and shows) its first Pb-Pb events after
# minutes (25 min-bias events, 7.4 min on 2 threads, docs/run.md) rather than after 256 events; O-O min-bias
# chunks stay at DEFAULT_BATCH
DEFAULT_CHUNK_PARTICLES = {"cpu": 1 << 16, "cuda": 1 << 25}
DEFAULT_TOKENS = {"cpu": 1 << 14, "cuda": 1 << 19}  # particle tokens per network call
# spectra per network batch of `hicgen spectra`: on a CPU small batches stay in cache (batch 32 ran 2.7x as fast as
# 256 on a 2-core VM, docs/benchmarks.md); on CUDA larger ones fill the GPU
DEFAULT_SPECTRA_BATCH = {"cpu": 32, "cuda": 256}
