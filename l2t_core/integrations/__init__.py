"""Adapters that put the L2T reward into other training libraries (each imports its library lazily)."""
