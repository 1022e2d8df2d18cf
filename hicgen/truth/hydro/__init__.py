"""(2+1)D boost-invariant viscous hydrodynamics and particlization, batched over events in torch.

Modules: eos (HotQCD lattice and conformal EOS), solver (Kurganov-Tadmor + RK2 with Israel-Stewart shear),
freestream (optional pre-equilibrium free streaming), freezeout (isothermal surface), cooper_frye (smooth spectra
with shear delta-f), gubser / bjorken (analytic and semi-analytic reference solutions), pipeline (IC -> spectra).
"""
