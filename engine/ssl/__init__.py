"""Self-supervised time-series encoders: models, losses, training, checkpoints, inference.

This package knows nothing of trading. Its parts:

- ``base``: the ``Encoder`` interface (causal ``forward``, ``training_loss``,
  ``receptive_field``, ``config``);
- ``registry``: encoders by ``kind`` and ``build_encoder``;
- ``ts2vec``: TS2Vec with causal dilated convolutions; ``losses``: contrastive losses;
- ``train``: the training loop with weight averaging, checkpoints and resume;
- ``checkpoint``: model folders (``weights.safetensors`` + ``card.json``);
- ``infer``: one-pass, chunked causal encoding of long series;
- ``pretrain``: a pretraining config to a model folder.
"""
