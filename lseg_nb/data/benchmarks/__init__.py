"""The LSeg paper's benchmarks: PASCAL-5i, COCO-20i, FSS-1000 (episodic zero-shot) and ADE20K-150 (fixed labels).

One module per benchmark (layout, folds, episodes, ``prepare``); :mod:`.registry` maps names to them;
:mod:`.training` serves their training data through the plain training path (``DataConfig(dataset=...)``).
Manifests (plain data) live in ``data_manifests/benchmarks/``.
"""
