"""Fine-tuning: it learns a planted label, never reads a label it must not, and is causal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from causality import assert_bar_by_bar_equals_series

from engine.ssl.finetune import finetune
from engine.ssl.ts2vec import TS2Vec


def _planted(length: int = 1600, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    # Two features; the label is the sign class of the first feature's last 3 bars' sum.
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((length, 2)).astype(np.float32)
    total = np.convolve(x[:, 0], np.ones(3), mode="full")[:length]
    labels = np.where(total > 1.0, 2, np.where(total < -1.0, 0, 1)).astype(np.int64)
    return x, labels


def _encoder() -> TS2Vec:
    torch.manual_seed(0)
    return TS2Vec(input_dims=2, output_dims=16, hidden_dims=16, depth=3)


def _tune(encoder, x, labels, **kwargs):
    settings = dict(iters=120, batch_size=8, crop_length=96, loss_bars=64, lr=3e-3, eval_every=20)
    settings.update(kwargs)
    return finetune(encoder, x, labels, slice(0, 1000), slice(1010, 1200), **settings)


def test_full_finetuning_learns_a_planted_label_out_of_sample():
    x, labels = _planted()
    tuned = _tune(_encoder(), x, labels, mode="full")
    proba = tuned.probabilities(x, start=1300)
    accuracy = (proba.argmax(axis=1) == labels[1300:]).mean()
    majority = np.bincount(labels[1300:]).max() / 300
    assert accuracy > majority + 0.15
    assert tuned.curve[0][0] == 0 and tuned.best_iteration > 0


def test_frozen_mode_changes_no_encoder_weight_and_partial_only_the_last_layer():
    x, labels = _planted()
    encoder = _encoder()
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    frozen = _tune(encoder, x, labels, mode="frozen", iters=40)
    partial = _tune(encoder, x, labels, mode="partial", iters=40)
    for key, value in frozen.encoder.state_dict().items():
        assert torch.equal(value, before[key]), key
    changed = [k for k, v in partial.encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and len(changed) <= 2, changed
    for key, value in encoder.state_dict().items():
        assert torch.equal(value, before[key]), f"the pretrained encoder changed: {key}"


def test_labels_after_the_training_rows_are_never_read_in_training():
    x, labels = _planted()
    scrambled = labels.copy()
    scrambled[1000:1010] = np.random.default_rng(1).integers(0, 3, 10)
    scrambled[1200:] = -1
    a = _tune(_encoder(), x, labels, mode="full", iters=40, patience=10)
    b = _tune(_encoder(), x, scrambled, mode="full", iters=40, patience=10)
    for key, value in a.encoder.state_dict().items():
        assert torch.equal(value, b.encoder.state_dict()[key]), key


def test_a_finetuned_encoder_stays_causal_bar_by_bar():
    x, labels = _planted()
    tuned = _tune(_encoder(), x, labels, mode="full", iters=20)
    bars = np.arange(len(x))
    assert_bar_by_bar_equals_series(tuned.encoder, x, bars, [300, 777, 1599], block_bars=256)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "half"}, "mode must be one of"),
        ({"validation_rows": slice(900, 1100)}, "must come after the training rows"),
        ({"validation_rows": slice(1100, 1100)}, "one validation row"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    x, labels = _planted()
    args = {"train_rows": slice(0, 1000), "validation_rows": slice(1010, 1200), **kwargs}
    with pytest.raises(ValueError, match=message):
        finetune(_encoder(), x, labels, **args)
