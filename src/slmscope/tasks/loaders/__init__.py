"""Loaders: local files in any format, declarative YAML configs, FinBen shapes, the hub."""
