"""Anchored generation (``EAQConfig(condition=...)``): synthetic episodes start from a real
episode's initial state (and, with ``"start_length"``, keep its length and end)."""

from __future__ import annotations

import numpy as np
import pytest

from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from diffusion_agents.eaq.encode import EpisodeLayout
from wrappers import load_episodes

TINY = EAQConfig(
    n_steps=40, batch_size=16, dim=8, dim_mults=(1,), q_hidden=32, q_warmup_steps=20,
    n_diffusion_steps=20, sample_steps=5, sample_batch_size=32, range_margin=5.0,
    max_sample_rounds=20,
)


@pytest.fixture
def real(dying_batch):
    assert len(set(dying_batch.lengths.tolist())) > 1, dying_batch.lengths  # needs varied lengths
    return dying_batch


def _match(batch, res) -> np.ndarray:
    """For each synthetic episode, the real episodes whose initial observations and state
    it repeats (to float rounding): ``(synthetic, real)`` bool."""
    a = np.concatenate([res.obs[:, 0].reshape(len(res.lengths), -1), res.states[:, 0]], 1)
    b = np.concatenate([batch.obs[:, 0].reshape(len(batch.lengths), -1), batch.states[:, 0]], 1)
    return np.abs(a[:, None, :] - b[None, :, :]).max(-1) < 1e-5


def test_anchor_mask_covers_the_initial_state_and_the_end_rows(real):
    layout = EpisodeLayout.from_batch(real)
    assert layout.anchor_mask("none") is None
    start = layout.anchor_mask("start")
    assert start.shape == (layout.num_features, layout.horizon)
    assert not start[:, 1:].any()  # column 0 only
    want = np.concatenate([layout.rows(k) for k in ("obs", "alive", "state")])
    assert sorted(np.flatnonzero(start[:, 0])) == sorted(want)
    both = layout.anchor_mask("start_length")
    ends = [layout.row(k) for k in ("terminated", "truncated", "padding")]
    assert both[ends].all() and (both & ~start).sum() == 3 * layout.horizon
    with pytest.raises(ValueError, match="condition"):
        layout.anchor_mask("goal")
    with pytest.raises(ValueError, match="condition"):
        EAQConfig(condition="goal")


@pytest.mark.parametrize("condition", ["start", "start_length"])
def test_synthetic_episodes_start_from_real_ones_and_keep_their_length(real, condition, tmp_path):
    # 400 steps: enough for the generated deaths to agree with the anchored end (at 40, most
    # samples let every agent die early, which ends an episode before its anchored length)
    aug = EAQAugmenter(TINY.replace(condition=condition, n_steps=400)).fit(
        real, show_progress=False
    )
    assert aug.anchors.shape[0] == real.num_episodes
    res = aug.sample(40, seed=3, show_progress=False)
    m = _match(real, res.batch)
    src = res.anchors  # the real episode each one is anchored to
    assert src.shape == (40,) and m[np.arange(40), src].all()  # starts where it did
    assert len(set(src.tolist())) > 3  # from many different ones
    np.testing.assert_array_equal(res.batch.alive[:, 0], real.alive[src, 0])
    if condition == "start_length":
        # ... and lasts as long, ending the same way: never longer (the done rows are held),
        # shorter only where the generated deaths leave no agent before the anchored end
        assert (res.batch.lengths <= real.lengths[src]).all()
        same = res.batch.lengths == real.lengths[src]
        assert same.mean() >= 0.9, (res.batch.lengths, real.lengths[src])
        last = res.batch.lengths[same] - 1
        rows, src = np.flatnonzero(same), src[same]
        for name in ("terminations", "truncations"):
            np.testing.assert_array_equal(
                getattr(res.batch, name)[rows, last], getattr(real, name)[src, last], name
            )
    # the anchors travel with a saved augmenter: the same samples after load
    loaded = EAQAugmenter.load(aug.save(tmp_path / "ckpt"))
    np.testing.assert_array_equal(loaded.sample(40, seed=3, show_progress=False).raw, res.raw)


def test_unanchored_samples_do_not_repeat_real_starts(real):
    """The check above can fail: without an anchor no start matches a real one."""
    res = EAQAugmenter(TINY).fit(real, show_progress=False).sample(40, seed=3, show_progress=False)
    assert not _match(real, res.batch).any() and res.anchors is None


def test_a_checkpoint_without_its_anchors_is_refused(real, tmp_path):
    from safetensors.torch import load_file, save_file

    path = EAQAugmenter(TINY.replace(condition="start", n_steps=5)).fit(
        real, show_progress=False
    ).save(tmp_path / "ckpt")
    w = path / "weights.safetensors"
    tensors = load_file(str(w))
    del tensors["anchors"]
    save_file(tensors, str(w))
    with pytest.raises(ValueError, match="condition='start'.*no anchors"):
        EAQAugmenter.load(path)


def test_augment_records_which_real_episode_each_synthetic_one_keeps(real):
    from diffusion_agents import eaq

    out = eaq.augment(
        real.dataset_id, num_episodes=6, config=TINY.replace(condition="start", n_steps=20),
        show_progress=False,
    )
    info = out.storage.metadata["multiagent"]["eaq"]
    assert info["settings"]["condition"] == "start" and info["fitted_on"] == real.dataset_id
    src = np.asarray(info["anchor_episodes"])
    new = load_episodes(out)
    syn = new.select(np.arange(real.num_episodes, new.num_episodes))
    assert src.shape == (6,) and syn.synthetic.all()
    np.testing.assert_allclose(syn.obs[:, 0], real.obs[src, 0], rtol=0, atol=1e-5)
