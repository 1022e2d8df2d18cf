"""The spectra model (paper 000, DiffHIC): initial entropy profile + eta/s -> 64 x 64 (pT, phi) histogram.

normalization.py  target, condition and label maps with their stored constants
task.py           data from 'hicgen-spectra' files and the training objective (SpectraTask)
generate.py       checkpoint loading (kind 'spectra', network 'unet'), batched ODE sampling
                  (generate_spectra) and particle lists (sample_particles)
"""
