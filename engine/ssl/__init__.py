"""Self-supervised time-series encoders: models, losses, training, checkpoints, inference.

This package knows nothing of trading. Its parts:

- ``base``: the ``Encoder`` interface (causal ``forward``, ``training_loss``,
  ``receptive_field``, ``config``);
- ``registry``: encoders by ``kind`` and ``build_encoder``;
- ``ts2vec``: TS2Vec with causal dilated convolutions; ``losses``: contrastive losses;
- ``train``: the training loop with weight averaging, checkpoints and resume;
- ``checkpoint``: model folders (``weights.safetensors`` + ``card.json``);
- ``infer``: causal encoding of series in fixed-shape blocks, bit-identical bar by bar;
- ``pretrain``: a pretraining config to a model folder.
"""

import os

# OpenMP threads that spin while they wait take the cores that other processes
# on a shared machine need, and training then runs many times slower (30x was
# measured on 2 busy cores). Wait passively unless the environment says
# otherwise; this takes effect only when torch is not loaded yet.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
