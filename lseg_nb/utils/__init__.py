"""Lowest layer: file IO (atomic writes, safe loading), strict parsing of data files, devices, label lists."""
