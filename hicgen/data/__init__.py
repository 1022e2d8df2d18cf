"""Dataset schema, event batches, particle species and event features: everything that defines an event on disk."""
