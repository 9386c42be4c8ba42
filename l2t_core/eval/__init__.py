"""Evaluation: problem suites, cached candidate pools, rerankers and beam-prune compared with CIs."""
