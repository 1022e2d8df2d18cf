"""Training: the generic loop (trainer), optimiser (Lion) and schedule, configs, and the point-cloud task and losses."""
