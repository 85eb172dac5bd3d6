"""Apps layer: command line, demo/evaluate pipelines, reports, predict, the label-explorer widget, notebook helpers."""
