"""Data layer: manifests, datasets and transforms, the offline synthetic set, benchmark adapters, run experiments."""
