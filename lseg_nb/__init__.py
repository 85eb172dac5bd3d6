"""lseg_nb: Jupyter-first language-driven semantic segmentation (LSeg)."""

__version__ = "0.1.0"
