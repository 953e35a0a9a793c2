"""Pairing real images from large collections (ACE's data section): features, K-means, two-pass union-find
inside each cluster, capped and cleaned pairs, written to OUT/pairs.parquet and turned into CU samples."""
