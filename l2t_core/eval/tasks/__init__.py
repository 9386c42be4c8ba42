"""Problem generators: graded arithmetic, and gold-vs-corrupted pools for the verifier suite."""
