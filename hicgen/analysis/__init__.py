"""Validation analyses of the papers: flow (cumulants, SP, EP), metrics (W1, Q closure, ratio maps),
jets (fastjet), classifier tests, plots and the `validate` report.  Heavy dependencies (scipy, matplotlib,
fastjet, torch) are imported by the modules that need them, not here."""
