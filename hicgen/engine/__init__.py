"""The generation engine: seeding and sharding, multiplicity buckets, precision and CUDA graphs, and the
driver that turns a point-cloud checkpoint into a stream of whole events (`hicgen.engine.generate`)."""
