"""Diffusion schedules, training objectives and ODE samplers shared by the point-cloud and spectra models."""
