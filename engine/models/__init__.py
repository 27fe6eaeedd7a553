"""Pretrained models: the versioned registry, and how versions differ.

``engine.models.registry`` stores every pretrained encoder as immutable,
content-addressed versions with their lineage; ``engine.models.compare``
tells two versions apart by configuration, data and metrics.
"""
