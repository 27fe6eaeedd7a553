"""The training loop: sections, determinism, weight averaging, checkpoints and resume."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.errors import ConfigError
from engine.ssl.train import CHECKPOINT_FILE, make_sections, paper_iterations, train
from engine.ssl.ts2vec import TS2Vec


class _Killed(Exception):
    pass


def _data() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal((n, 2)) for n in (90, 120, 75)]


def _run(checkpoint_dir=None, kill_at=None, resume=True, seed=3, iters=6):
    torch.manual_seed(0)
    encoder = TS2Vec(2, output_dims=8, hidden_dims=8, depth=2)

    def progress(iteration, total, loss):
        if iteration == kill_at:
            raise _Killed

    return train(
        encoder,
        _data(),
        iters=iters,
        batch_size=2,
        max_train_length=40,
        seed=seed,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=2,
        resume=resume,
        progress=progress,
    )


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_paper_rule_is_200_iterations_up_to_100k_values_else_600():
    assert paper_iterations(100_000) == 200
    assert paper_iterations(100_001) == 600


def test_long_series_are_split_into_sections_of_at_least_max_train_length():
    sections = make_sections([np.zeros((100, 2)), np.zeros((30, 2)), np.zeros((61, 2))], 30)
    assert [len(s) for s in sections] == [34, 33, 33, 30, 31, 30]
    assert all(s.dtype == torch.float32 for s in sections)


def test_same_seed_gives_the_same_weights_and_another_seed_does_not():
    first, again, other = _run(), _run(), _run(seed=4)
    _assert_same_weights(first.encoder, again.encoder)
    assert first.losses == again.losses and len(first.losses) == 6
    assert first.losses != other.losses


def test_returned_encoder_holds_the_running_average_of_the_weights():
    torch.manual_seed(0)
    encoder = TS2Vec(2, output_dims=8, hidden_dims=8, depth=2)
    initial = {k: v.clone() for k, v in encoder.state_dict().items()}
    snapshots = [initial]

    def progress(iteration, total, loss):
        snapshots.append({k: v.clone() for k, v in encoder.state_dict().items()})

    result = train(encoder, _data(), iters=3, batch_size=2, max_train_length=40, progress=progress)
    for key, value in result.encoder.state_dict().items():
        expected = torch.stack([s[key] for s in snapshots]).mean(dim=0)
        torch.testing.assert_close(value, expected, atol=1e-6, rtol=1e-5)
    assert not torch.equal(
        result.encoder.state_dict()["input_fc.weight"], initial["input_fc.weight"]
    )


def test_resume_after_a_kill_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path):
    uninterrupted = _run()
    with pytest.raises(_Killed):
        _run(checkpoint_dir=tmp_path, kill_at=5)
    resumed = _run(checkpoint_dir=tmp_path)
    assert resumed.resumed_from == 4
    assert resumed.losses == uninterrupted.losses
    _assert_same_weights(resumed.encoder, uninterrupted.encoder)


def test_a_finished_run_resumes_at_its_end(tmp_path):
    done = _run(checkpoint_dir=tmp_path)
    again = _run(checkpoint_dir=tmp_path)
    assert again.resumed_from == 6 and again.losses == done.losses
    _assert_same_weights(again.encoder, done.encoder)


def test_no_resume_starts_afresh(tmp_path):
    with pytest.raises(_Killed):
        _run(checkpoint_dir=tmp_path, kill_at=3)
    fresh = _run(checkpoint_dir=tmp_path, resume=False)
    assert fresh.resumed_from is None


def test_checkpoint_of_another_run_is_refused(tmp_path):
    _run(checkpoint_dir=tmp_path, iters=2)
    assert (tmp_path / CHECKPOINT_FILE).is_file()
    with pytest.raises(ConfigError, match="different run"):
        _run(checkpoint_dir=tmp_path, seed=9)


def test_series_too_short_to_train_on_are_refused():
    with pytest.raises(ConfigError, match="at least 2 steps"):
        train(TS2Vec(2, output_dims=8, hidden_dims=8, depth=1), [np.zeros((1, 2))], iters=1)
