"""Zero-shot semantic segmentation with recursive training and the ZS-MMD loss.

The reusable core of the pipeline: datasets, embeddings, networks, losses, the HDF5 feature cache,
training loops and metrics. The thin modules under ``stages/`` wire these to ``params.yaml``.
"""
