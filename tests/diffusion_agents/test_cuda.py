"""MADiff and EAQ on a CUDA GPU: training, acting, sampling, and checkpoints that move between
CUDA and the CPU. Skipped where CUDA is absent (CI has no GPU); run them on a GPU machine with
``pytest -m cuda tests``. The device-name checks at the end run everywhere.

Tolerances: cuDNN convolutions use TF32 on Ampere and newer GPUs by default (about 10 bits of
mantissa), so a CUDA forward differs from the CPU one in the third decimal; the checks below
allow for that and nothing more. Sampling noise comes from a CPU generator, so one seed gives
the same noise on both devices.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffusion_agents import MADiffConfig, MADiffPolicy, eaq
from diffusion_agents.diffusion import resolve_device
from diffusion_agents.eaq import EAQAugmenter, EAQConfig
from tests.diffusion_agents.test_eaq_augment import TINY as EAQ_TINY
from tests.diffusion_agents.test_eaq_augment import _record_source
from tests.diffusion_agents.test_madiff import TINY, TOY, _agreement, _obs_pair, _record
from tests.wrappers.toy_envs import ChasePolicy
from wrappers import load_episodes, make_env

needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA GPU (CI has none)"
)


@pytest.fixture(scope="module")
def chase_batch(tmp_path_factory):
    return _record(
        tmp_path_factory, "make_chase_env", lambda env: ChasePolicy(), 40,
        {"n_agents": 2, "max_cycles": 8}, "chase",
    )


@pytest.fixture(scope="module")
def cuda_policy(chase_batch):
    cfg = TINY.replace(n_steps=300, batch_size=32, guidance_weight=1.0, device="cuda")
    return MADiffPolicy.train(chase_batch, cfg, seed=0, show_progress=False)


def _episode_plans(policy, seed: int = 4) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Actions and plans of one chase episode (the env follows the policy's own actions)."""
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed)
    acts, plans = [], []
    while env.agents:
        a = policy.act(obs)
        acts.append([int(a[k]) for k in sorted(a)])
        plans.append(policy._last["plan"].detach().cpu())
        obs, *_ = env.step(a)
    return acts, plans


@pytest.mark.cuda
@needs_cuda
def test_madiff_trains_on_cuda_and_reproduces_the_behaviour_policy(cuda_policy):
    assert cuda_policy.device.type == "cuda"
    assert {p.device.type for p in cuda_policy.model.parameters()} == {"cuda"}
    # the same check as the CPU test: chance is 1/3
    assert _agreement(cuda_policy) > 0.6


@pytest.mark.cuda
@needs_cuda
def test_cuda_checkpoint_loads_on_cpu_and_cuda_with_the_same_plans(cuda_policy, tmp_path):
    path = cuda_policy.save(tmp_path / "madiff.safetensors")
    on_cpu = MADiffPolicy.load(path)  # the default device is the CPU
    on_gpu = MADiffPolicy.load(path, device="cuda")
    assert on_cpu.device.type == "cpu" and on_gpu.device.type == "cuda"
    acts, plans = _episode_plans(cuda_policy)
    acts_gpu, plans_gpu = _episode_plans(on_gpu)
    assert acts_gpu == acts  # same weights, same device, same seed
    for p, q in zip(plans, plans_gpu):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-5)
    # first step on the CPU: same observation, same noise -> the same plan up to TF32
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=4)
    on_cpu.reset(seed=4)
    on_cpu.act(obs)
    torch.testing.assert_close(on_cpu._last["plan"], plans[0], rtol=0, atol=2e-2)
    # and a policy moved back to CUDA acts like the one trained there
    moved = MADiffPolicy.load(path).to("cuda")
    assert _episode_plans(moved)[0] == acts


@pytest.mark.cuda
@needs_cuda
def test_decentralized_agent_ignores_teammates_observation_on_cuda(cuda_policy):
    obs, changed = _obs_pair()
    futures, actions = [], []
    for o in (obs, changed):
        cuda_policy.reset(seed=11)
        actions.append(cuda_policy.act(o)["runner_0"])
        futures.append(cuda_policy.predicted_futures()["runner_0"]["runner_0"])
    assert actions[0] == actions[1]
    np.testing.assert_allclose(futures[0], futures[1], rtol=0, atol=1e-5)


@pytest.mark.cuda
@needs_cuda
def test_traced_sampling_matches_eager_on_cuda(cuda_policy):
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=5)
    traced, eager = cuda_policy.with_sampling(), cuda_policy.with_sampling(traced=False)
    for pol in (traced, eager):
        pol.reset(seed=2)
    assert traced.act(obs) == eager.act(obs)
    torch.testing.assert_close(traced._last["plan"], eager._last["plan"], rtol=0, atol=1e-4)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("changes", [{"compile": True}, {"precision": "bf16"}],
                         ids=["compiled", "bf16"])
def test_compiled_and_bf16_training_on_cuda_track_eager_fp32(chase_batch, changes):
    cfg = TINY.replace(n_steps=20, ema_start=2, device="cuda")
    losses: dict[str, list[float]] = {"base": [], "variant": []}
    for key, c in (("base", cfg), ("variant", cfg.replace(**changes))):
        policy = MADiffPolicy.train(
            chase_batch, c, show_progress=False,
            callback=lambda step, m, key=key: losses[key].append(m["loss"]),
        )
        assert {p.dtype for p in policy.model.parameters()} == {torch.float32}
    base, var = np.asarray(losses["base"]), np.asarray(losses["variant"])
    assert np.isfinite(var).all()
    # compiled: the same computation, rounding aside; bf16: about 3 significant digits
    tol = 2e-2 if "compile" in changes else 1e-1
    np.testing.assert_allclose(var, base, rtol=tol, atol=1e-3)


@pytest.mark.cuda
@needs_cuda
def test_auto_device_picks_cuda():
    assert resolve_device("auto").type == "cuda"
    assert resolve_device("cuda:0") == torch.device("cuda:0")


@pytest.mark.cuda
@needs_cuda
def test_eaq_fits_and_samples_on_cuda_and_loads_on_cpu(tmp_path):
    src = _record_source(n=8)
    aug = EAQAugmenter(EAQ_TINY.replace(device="cuda")).fit(src, show_progress=False)
    assert {p.device.type for p in aug.model.parameters()} == {"cuda"}
    a = aug.sample(16, seed=5, show_progress=False)
    b = aug.sample(16, seed=5, show_progress=False)
    np.testing.assert_array_equal(a.raw, b.raw)  # same seed, same samples on CUDA too
    assert a.batch.num_episodes == 16
    path = aug.save(tmp_path / "eaq")
    on_cpu = EAQAugmenter.load(path)  # config.device was "cuda"; load takes the CPU
    assert {p.device.type for p in on_cpu.model.parameters()} == {"cpu"}
    # the CPU and CUDA samplers draw the same noise: the first round's candidates agree up
    # to TF32 rounding (same accepted set only if no candidate sits on a decision edge)
    x_gpu = _first_round(aug, seed=7)
    x_cpu = _first_round(on_cpu, seed=7)
    np.testing.assert_allclose(x_cpu, x_gpu, rtol=0, atol=3e-2)


def _first_round(aug: EAQAugmenter, seed: int) -> np.ndarray:
    cfg = aug.config
    gen = torch.Generator().manual_seed(seed)
    net = aug.ema.ema_model.eval()
    x = aug.model.diffusion.sample(
        lambda x_t, t: net(x_t, t), (8, aug.layout.num_features, aug.layout.horizon),
        steps=cfg.sample_steps, sampler=cfg.sampler, generator=gen, device=aug._device(),
    )
    return x.cpu().numpy()


# every model EAQ can fit beside f_theta and Q_phi, and every tensor it keeps (anchors, change
# scales, conservative Q), on one config: each puts its own tensors on the device
EAQ_ALL_OPTIONS = dict(
    condition="start_length", reward_decoder="model", action_decoder="inverse_dynamics",
    obs_deltas=True, dynamics_weight=0.1, q_conservative=0.1, reward_norm="quantile",
)


def eaq_with_all_options(src, device: str | None) -> EAQAugmenter:
    cfg = EAQ_TINY.replace(device=device, **EAQ_ALL_OPTIONS)
    return EAQAugmenter(cfg).fit(src, show_progress=False)


@pytest.mark.cuda
@needs_cuda
def test_eaq_with_every_option_fits_samples_and_moves_to_cpu_on_cuda(tmp_path):
    src = _record_source(n=8)
    aug = eaq_with_all_options(src, "cuda")
    assert {p.device.type for p in aug.model.parameters()} == {"cuda"}
    assert {b.device.type for b in aug.model.buffers()} == {"cuda"}
    assert np.isfinite([m["model"] for m in aug.history]).all()
    for key in ("rew_fit", "inv_fit", "dyn_fit"):
        assert key in aug.history[-1], key
    a = aug.sample(12, seed=3, show_progress=False)
    b = aug.sample(12, seed=3, show_progress=False)
    np.testing.assert_array_equal(a.raw, b.raw)
    assert a.batch.num_episodes == 12 and a.anchors is not None
    on_cpu = EAQAugmenter.load(aug.save(tmp_path / "eaq"))
    assert {p.device.type for p in on_cpu.model.parameters()} == {"cpu"}
    c = on_cpu.sample(12, seed=3, show_progress=False)
    assert c.batch.num_episodes == 12
    # the same anchors (real starts) on both devices: they are data, not sampled values
    np.testing.assert_array_equal(c.anchors, a.anchors)


@pytest.mark.cuda
@needs_cuda
def test_eaq_augment_on_cuda_writes_a_new_dataset(minari_root):
    src = _record_source(n=8)
    out = eaq.augment(src, ratio=1.0, seed=0, config=EAQ_TINY.replace(device="cuda"),
                      show_progress=False)
    batch = load_episodes(out)
    assert batch.synthetic.tolist() == [False] * 8 + [True] * 8
    assert out.storage.metadata["multiagent"]["eaq"]["settings"]["device"] == "cuda"


# -- device names: checked everywhere, GPU or not ------------------------------------------


def test_device_names_are_checked_by_both_configs():
    for bad in ("gpu", "cuda:x", "tpu"):
        with pytest.raises(ValueError, match=r"MADiffConfig.device=.*'cuda:N' or 'auto'"):
            MADiffConfig(device=bad)
        with pytest.raises(ValueError, match=r"EAQConfig.device=.*'cuda:N' or 'auto'"):
            EAQConfig(device=bad)
    for ok in (None, "cpu", "cuda", "cuda:1", "auto"):
        EAQConfig(device=ok)
    assert resolve_device(None).type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error where CUDA is absent")
def test_asking_for_cuda_without_it_is_a_clear_error(tmp_path):
    src = _record_source(n=4)
    with pytest.raises(ValueError, match="asked for CUDA, but CUDA is not available"):
        EAQAugmenter(EAQ_TINY.replace(device="cuda")).fit(src, show_progress=False)
    with pytest.raises(ValueError, match="asked for CUDA, but CUDA is not available"):
        MADiffPolicy.train(load_episodes(src), TINY.replace(device="cuda"),
                           show_progress=False)
    assert resolve_device("auto").type == "cpu"
