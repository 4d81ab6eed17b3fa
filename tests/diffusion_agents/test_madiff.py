"""MADiff policy tests: shapes and masks, reproduction of a behaviour policy, decentralization,
save/load and refused checkpoints, bad inputs to ``act``, resume after interruption."""

from __future__ import annotations

import math
import os
from unittest import mock

import numpy as np
import pytest
import torch
from gymnasium import spaces
from safetensors.torch import save_file

from diffusion_agents import MADiffConfig, MADiffPolicy
from diffusion_agents.checkpoint import CheckpointError
from tests.wrappers.toy_envs import ChasePolicy
from wrappers import RandomPolicy, load_episodes, make_env, record_dataset

TOY = "tests.wrappers.toy_envs"
# A tiny model: every test trains in seconds on 2 cores.
TINY = MADiffConfig(
    base_width=16,
    dim_mults=(1, 2),
    inv_hidden=(64, 64),
    history=1,
    horizon=4,
    n_steps=60,
    batch_size=16,
    ema_start=10,
    ema_update_every=1,
    learning_rate=1e-3,
    sampling_steps=3,
    n_diffusion_steps=50,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _record(tmp_path_factory, factory, policy_fn, episodes, kwargs, name):
    root = tmp_path_factory.mktemp("minari")
    with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": str(root)}):
        env = make_env(f"{TOY}:{factory}", **kwargs)
        ds = record_dataset(
            f"{TOY}:{factory}",
            policy_fn(env),
            episodes,
            f"toy/{name}/data-v0",
            env_kwargs=kwargs,
            show_progress=False,
            num_ref_episodes=2,
        )
        return load_episodes(ds)


@pytest.fixture(scope="module")
def chase_batch(tmp_path_factory):
    return _record(
        tmp_path_factory,
        "make_chase_env",
        lambda env: ChasePolicy(),
        40,
        {"n_agents": 2, "max_cycles": 8},
        "chase",
    )


@pytest.fixture(scope="module")
def chase_policy(chase_batch):
    cfg = TINY.replace(n_steps=300, batch_size=32, guidance_weight=1.0)
    return MADiffPolicy.train(chase_batch, cfg, seed=0, show_progress=False)


@pytest.fixture(scope="module")
def hetero_batch(tmp_path_factory):
    return _record(
        tmp_path_factory,
        "make_hetero_env",
        lambda env: RandomPolicy(env, seed=0),
        12,
        {"max_cycles": 6},
        "hetero",
    )


@pytest.fixture(scope="module")
def hetero_policy(hetero_batch):
    return MADiffPolicy.train(hetero_batch, TINY, seed=0, show_progress=False)


def _run_episode(env, policy, seed):
    obs, _ = env.reset(seed=seed)
    policy.reset(seed=seed)
    steps = 0
    while env.agents:
        actions = policy.act(obs)
        assert set(actions) == set(obs)
        obs, *_ = env.step(actions)
        steps += 1
    return steps


def test_reproduces_deterministic_behaviour_policy(chase_policy):
    # chance is 1/3; a working pipeline agrees far more often
    agreement = _agreement(chase_policy)
    assert agreement > 0.6, f"agreement {agreement:.2f}"


def test_heterogeneous_agents_shapes_and_teammate_predictions(
    hetero_policy, hetero_batch
):
    env = make_env(f"{TOY}:make_hetero_env", max_cycles=6)
    obs, _ = env.reset(seed=3)
    hetero_policy.reset(seed=0)
    actions = hetero_policy.act(obs)
    for agent, a in actions.items():
        assert env.action_space(agent).contains(a), (agent, a)
    assert isinstance(actions["scout"], np.integer) and isinstance(
        actions["worker"], np.integer
    )
    assert actions["pilot"].shape == (2,) and actions["pilot"].dtype == np.float32
    preds = hetero_policy.teammate_predictions()
    assert set(preds) == {"scout", "worker", "pilot"}
    assert set(preds["scout"]) == {"worker", "pilot"}
    dims = dict(zip(hetero_batch.agents, hetero_batch.obs_dims))
    for by_j in preds.values():
        for j, p in by_j.items():
            assert p.shape == (TINY.horizon, dims[j]) and np.isfinite(p).all()
    now = hetero_policy.teammate_estimates()
    assert {i: set(by_j) for i, by_j in now.items()} == {
        i: set(by_j) for i, by_j in preds.items()
    }
    assert all(p.shape == (dims[j],) for by_j in now.values() for j, p in by_j.items())
    assert _run_episode(env, hetero_policy, 5) == 6
    a2, _ = hetero_policy.predict(obs, episode_start=True)
    assert set(a2) == set(obs)
    # change-space plans: padded observation dims stay 0 in the plan
    deltas = MADiffPolicy.train(
        hetero_batch, TINY.replace(n_steps=20, plan_deltas=True), show_progress=False
    )
    assert _run_episode(env, deltas, 5) == 6
    plan = deltas._last["plan"]
    assert (plan[:, ~deltas.model.dim_valid] == 0).all()


def test_action_masks_are_respected(tmp_path_factory):
    # MaskedEnv(strict=True) raises on any illegal action; masks change every step.
    batch = _record(
        tmp_path_factory,
        "make_masked_env",
        lambda env: RandomPolicy(env, seed=1),
        8,
        {"n_agents": 2, "n_actions": 4, "max_cycles": 7},
        "masked",
    )
    policy = MADiffPolicy.train(batch, TINY.replace(n_steps=20), show_progress=False)
    env = make_env(f"{TOY}:make_masked_env", n_agents=2, n_actions=4, max_cycles=7)
    for seed in range(3):
        assert _run_episode(env, policy, seed) == 7
    sampled = policy.with_sampling(sample_actions=True)  # drawn actions respect masks too
    for seed in range(3):
        assert _run_episode(env, sampled, seed) == 7


def test_sampled_actions_follow_the_config_and_the_per_call_override(hetero_batch):
    """``sample_actions=True`` draws discrete actions from the inverse dynamics' softmax:
    on a reset's first call the plan is the same as the arg-max policy's (same noise), so
    only the action choice differs; ``deterministic=True`` gives the arg-max back."""
    policy = MADiffPolicy.train(
        hetero_batch, TINY.replace(n_steps=5), seed=0, show_progress=False
    )
    sampled = policy.with_sampling(sample_actions=True)
    env = make_env(f"{TOY}:make_hetero_env", max_cycles=6)
    disc = [a for a in policy.agents if hasattr(env.action_space(a), "n")]
    assert disc
    differ = 0
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        policy.reset(seed=seed)
        greedy = policy.act(obs)
        sampled.reset(seed=seed)
        forced = sampled.act(obs, deterministic=True)
        assert all(int(forced[a]) == int(greedy[a]) for a in disc)
        sampled.reset(seed=seed)
        drawn = sampled.act(obs)
        differ += sum(int(drawn[a]) != int(greedy[a]) for a in disc)
        sampled.reset(seed=seed)
        again = sampled.act(obs)  # reproducible per seed
        assert all(np.array_equal(again[a], drawn[a]) for a in drawn)
    # a 5-step model's softmax is near uniform: drawn actions often differ from arg-max
    assert differ >= 5, differ


def test_dying_agents_and_discrete_start(tmp_path_factory):
    kwargs = {"deaths": [2, 4, None], "max_cycles": 6, "action_start": 1}
    batch = _record(
        tmp_path_factory,
        "make_dying_env",
        lambda env: RandomPolicy(env, seed=2),
        8,
        kwargs,
        "dying",
    )
    for mode, deltas in (
        ("decentralized", False), ("centralized", False), ("decentralized", True)
    ):
        policy = MADiffPolicy.train(
            batch, TINY.replace(n_steps=20, mode=mode, plan_deltas=deltas),
            show_progress=False,
        )
        env = make_env(f"{TOY}:make_dying_env", **kwargs)
        obs, _ = env.reset(seed=0)
        policy.reset()
        seen_counts = set()
        while env.agents:
            actions = policy.act(obs)
            assert set(actions) == set(obs)
            for agent, a in actions.items():
                assert env.action_space(agent).contains(a), (agent, a)
            seen_counts.add(len(env.agents))
            obs, *_ = env.step({a: actions[a] for a in env.agents})
        assert seen_counts == {1, 2, 3}  # agents died mid-episode


def _obs_pair(env_seed=0):
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=env_seed)
    changed = {a: o.copy() for a, o in obs.items()}
    changed["runner_1"] = changed["runner_1"] + np.float32(0.7)
    return obs, changed


def test_decentralized_agent_ignores_teammates_observation(chase_policy):
    obs, changed = _obs_pair()
    chase_policy.reset(seed=11)
    a1 = chase_policy.act(obs)
    f1 = chase_policy.predicted_futures()["runner_0"]["runner_0"]
    chase_policy.reset(seed=11)
    a2 = chase_policy.act(changed)
    f2 = chase_policy.predicted_futures()["runner_0"]["runner_0"]
    assert a1["runner_0"] == a2["runner_0"]
    np.testing.assert_array_equal(f1, f2)
    # ... over several steps too (histories stay per agent)
    for _ in range(3):
        b1 = chase_policy.act(obs)
    chase_policy.reset(seed=11)
    chase_policy.act(changed)
    for _ in range(3):
        b2 = chase_policy.act(changed)
    assert b1["runner_0"] == b2["runner_0"]


def test_centralized_plan_depends_on_teammates(chase_batch):
    policy = MADiffPolicy.train(
        chase_batch, TINY.replace(mode="centralized", n_steps=30), show_progress=False
    )
    obs, changed = _obs_pair()
    policy.reset(seed=11)
    policy.act(obs)
    f1 = policy.predicted_futures()["runner_0"]["runner_0"]
    policy.reset(seed=11)
    policy.act(changed)
    f2 = policy.predicted_futures()["runner_0"]["runner_0"]
    assert not np.array_equal(f1, f2)


def test_save_load_same_actions_and_refuses_bad_files(chase_policy, tmp_path):
    path = chase_policy.save(tmp_path / "madiff.safetensors")
    loaded = MADiffPolicy.load(path)
    assert loaded.config == chase_policy.config and loaded.agents == chase_policy.agents
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    for policy_pair in ((chase_policy, loaded),):
        outs = []
        for p in policy_pair:
            obs, _ = env.reset(seed=4)
            p.reset(seed=4)
            acts = []
            while env.agents:
                a = p.act(obs)
                acts.append([int(a[k]) for k in sorted(a)])
                obs, *_ = env.step(a)
            outs.append(acts)
        assert outs[0] == outs[1]

    # tampered: one byte of tensor data flipped
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 0xFF
    bad = tmp_path / "tampered.safetensors"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="integrity"):
        MADiffPolicy.load(bad)
    # foreign: a valid safetensors file of someone else
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign))
    with pytest.raises(CheckpointError, match="not a diffusion-agents checkpoint"):
        MADiffPolicy.load(foreign)
    # not safetensors at all (e.g. a pickle)
    junk = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(3)}, junk)
    with pytest.raises(CheckpointError, match="not a readable"):
        MADiffPolicy.load(junk)
    with pytest.raises(FileNotFoundError, match="no_such"):
        MADiffPolicy.load(tmp_path / "no_such.safetensors")


def test_bad_inputs_to_act_name_the_agent(chase_policy):
    obs, _ = _obs_pair()
    chase_policy.reset()
    with pytest.raises(ValueError, match="no observations"):
        chase_policy.act({})
    with pytest.raises(KeyError, match="ghost"):
        chase_policy.act({**obs, "ghost": obs["runner_0"]})
    with pytest.raises(ValueError, match="'runner_1'.*missing"):
        chase_policy.act({**obs, "runner_1": None})
    with pytest.raises(ValueError, match=r"'runner_1'.*shape \(4,\), expected \(3,\)"):
        chase_policy.act({**obs, "runner_1": np.zeros(4, np.float32)})
    with pytest.raises(TypeError, match="'runner_0'.*dtype"):
        chase_policy.act({**obs, "runner_0": np.array(["a", "b", "c"])})
    nan = obs["runner_0"].copy()
    nan[1] = np.nan
    with pytest.raises(ValueError, match="'runner_0'.*NaN"):
        chase_policy.act({**obs, "runner_0": nan})
    with pytest.raises(TypeError, match="observation dict"):
        chase_policy.act([obs["runner_0"]])


@pytest.mark.parametrize("changes", [{}, {"inverse_learning_rate": 5e-4}],
                         ids=["one-rate", "inverse-rate"])
def test_resume_after_interruption_matches_uninterrupted_run(chase_batch, tmp_path, changes):
    # with inverse_learning_rate the optimizer holds several views of the flat tensor
    cfg = TINY.replace(n_steps=16, checkpoint_every=8, ema_start=4, **changes)
    full = MADiffPolicy.train(chase_batch, cfg, show_progress=False)
    ckpt = tmp_path / "run.safetensors"
    MADiffPolicy.train(
        chase_batch,
        cfg,
        show_progress=False,
        checkpoint_path=ckpt,
        callback=lambda step, m: step == 8,
    )  # "interrupted" at step 8
    resumed = MADiffPolicy.train(
        chase_batch, cfg, show_progress=False, checkpoint_path=ckpt
    )
    assert resumed.info["train_steps"] == 16
    for (k, v), (k2, v2) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items()
    ):
        assert k == k2 and torch.equal(v, v2), k
    with pytest.raises(ValueError, match="config differs"):
        MADiffPolicy.train(
            chase_batch,
            cfg.replace(base_width=8),
            show_progress=False,
            checkpoint_path=ckpt,
        )


def test_config_checks():
    with pytest.raises(ValueError, match="mode='joint'.*allowed"):
        MADiffConfig(mode="joint")
    with pytest.raises(ValueError, match="sampling_steps=0"):
        MADiffConfig(sampling_steps=0)
    with pytest.raises(TypeError):
        MADiffConfig(32)  # keyword-only
    cfg = MADiffConfig(dim_mults=[1, 2])
    assert cfg.dim_mults == (1, 2) and MADiffConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(MADiffConfig.reference().dim_mults, tuple)
    assert isinstance(spaces.Discrete(2), spaces.Space)


def test_traced_sampling_matches_eager_and_follows_weight_changes(chase_policy):
    """The cached TorchScript planner gives the eager loop's actions, and is rebuilt when
    the weights change in place (e.g. an EMA update) instead of acting on stale ones."""
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=5)
    traced = chase_policy.with_sampling()
    eager = chase_policy.with_sampling(traced=False)
    for pol in (traced, eager):
        pol.reset(seed=2)
    assert traced.act(obs) == eager.act(obs)
    plan_t, plan_e = traced._last["plan"], eager._last["plan"]
    assert torch.allclose(plan_t, plan_e, atol=1e-5)
    assert len(traced._planners) == 1
    param = traced.model.unet.final[-1].bias  # shifts every x0 estimate
    saved = param.detach().clone()
    try:
        with torch.no_grad():
            param.add_(0.5)
        traced.reset(seed=2)
        eager.reset(seed=2)
        traced.act(obs)
        eager.act(obs)
        assert torch.allclose(traced._last["plan"], eager._last["plan"], atol=1e-5)
        assert not torch.allclose(traced._last["plan"], plan_t, atol=1e-5)
    finally:
        with torch.no_grad():
            param.copy_(saved)


def test_compiled_training_matches_eager(chase_batch):
    """``compile=True`` (channels-last, compiled U-Net) trains the same model, float
    rounding aside."""
    cfg = TINY.replace(n_steps=6, ema_start=2, dim_mults=(1,))
    losses: dict[bool, list[float]] = {False: [], True: []}
    policies = {}
    for flag in (False, True):
        policies[flag] = MADiffPolicy.train(
            chase_batch,
            cfg.replace(compile=flag),
            show_progress=False,
            callback=lambda step, m, flag=flag: losses[flag].append(m["loss"]),
        )
    assert losses[True] == pytest.approx(losses[False], rel=1e-3, abs=1e-5)
    for (k, v), v2 in zip(
        policies[False].model.state_dict().items(), policies[True].model.state_dict().values()
    ):
        torch.testing.assert_close(v2, v, rtol=1e-3, atol=1e-4, msg=k)


def _agreement(policy, episodes=6):
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    expert = ChasePolicy()
    agree = total = 0
    for ep in range(episodes):
        obs, _ = env.reset(seed=1000 + ep)
        policy.reset(seed=ep)
        while env.agents:
            act, ref = policy.act(obs), expert.act(obs)
            agree += sum(int(act[a]) == int(ref[a]) for a in act)
            total += len(act)
            obs, *_ = env.step(act)
    return agree / total


def test_bf16_training_runs_in_bf16_keeps_fp32_state_and_learns(chase_batch, tmp_path):
    """``precision="bf16"``: the U-Net's training forward runs in bfloat16, weights and the
    optimizer stay float32, losses track float32 training, and the policy still learns the
    behaviour policy, saves, loads and resumes (with either precision)."""
    cfg = TINY.replace(n_steps=6, ema_start=2)
    seen: list[torch.dtype] = []
    losses: dict[str, list[float]] = {"fp32": [], "bf16": []}

    def conv_dtype(module, args, out):
        if isinstance(module, torch.nn.Conv1d) and module.training:
            seen.append(out.dtype)

    for prec in ("fp32", "bf16"):
        hook = torch.nn.modules.module.register_module_forward_hook(conv_dtype)
        try:
            MADiffPolicy.train(
                chase_batch,
                cfg.replace(precision=prec),
                show_progress=False,
                callback=lambda step, m, prec=prec: losses[prec].append(m["loss"]),
            )
        finally:
            hook.remove()
        if prec == "fp32":
            assert seen and set(seen) == {torch.float32}
            seen.clear()
    assert torch.bfloat16 in seen
    assert all(math.isfinite(v) for v in losses["bf16"])
    # bf16 keeps ~3 significant digits: close to the fp32 run, not equal to it
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)
    assert losses["bf16"] != losses["fp32"]

    ckpt = tmp_path / "bf16.safetensors"
    long = TINY.replace(n_steps=300, batch_size=32, precision="bf16", checkpoint_every=150)
    pol = MADiffPolicy.train(
        chase_batch, long, seed=0, show_progress=False, checkpoint_path=ckpt,
        callback=lambda step, m: step == 150,
    )
    assert pol.info["train_steps"] == 150
    pol = MADiffPolicy.train(  # resumes in float32: precision is a training setting
        chase_batch, long.replace(precision="fp32"), seed=0, show_progress=False,
        checkpoint_path=ckpt,
    )
    assert pol.info["train_steps"] == 300
    assert all(v.dtype == torch.float32 for v in pol.model.state_dict().values()
               if v.is_floating_point())
    assert _agreement(pol) > 0.6
    path = tmp_path / "bf16_policy.safetensors"
    pol.save(path)
    loaded = MADiffPolicy.load(path)
    env = make_env(f"{TOY}:make_chase_env", n_agents=2, max_cycles=8)
    obs, _ = env.reset(seed=3)
    pol.reset(seed=1)
    loaded.reset(seed=1)
    assert pol.act(obs) == loaded.act(obs)


def test_plan_deltas_round_trip_and_policy(chase_batch, tmp_path):
    """``plan_deltas``: the future columns are diffused as scaled one-step changes; the
    transform inverts, the data's changes land in [-1, 1], the inpainted history and
    current column are untouched, a trained policy still reproduces the behaviour policy,
    and ``delta_scale`` is saved with the weights."""
    cfg = TINY.replace(n_steps=300, batch_size=32, guidance_weight=1.0, plan_deltas=True)
    policy = MADiffPolicy.train(chase_batch, cfg, seed=0, show_progress=False)
    model = policy.model
    assert (model.delta_scale > 0).all() and not torch.all(model.delta_scale == 1.0)
    obs = model.normalize_obs(torch.as_tensor(chase_batch.obs))  # (E, T + 1, A, D)
    w = obs[:, :6].permute(0, 2, 3, 1)  # windows (E, A, D, 6) of real episodes
    z = model.to_plan(w)
    h = cfg.history
    torch.testing.assert_close(z[..., : h + 1], w[..., : h + 1])
    assert z[..., h + 1 :].abs().max() <= 1.0 + 1e-5
    assert z[..., h + 1 :].abs().max() > 0.3  # the changes use the range
    torch.testing.assert_close(model.from_plan(z), w, atol=1e-5, rtol=0)
    # the plan comes back in absolute units: its known current column is the observation
    agreement = _agreement(policy)
    assert agreement > 0.6, f"agreement {agreement:.2f}"
    loaded = MADiffPolicy.load(policy.save(tmp_path / "deltas.safetensors"))
    torch.testing.assert_close(loaded.model.delta_scale, model.delta_scale)


def test_inverse_steps_stops_training_the_inverse_dynamics_only(chase_batch):
    from diffusion_agents.madiff.training import TrainingRun

    cfg = TINY.replace(n_steps=12, inverse_steps=5)
    model = MADiffPolicy._build_model(cfg, MADiffPolicy._model_dims(chase_batch), 0)
    run = TrainingRun.start(model, chase_batch, cfg)

    def inv_now():
        return torch.cat([p.detach().reshape(-1).clone() for p in model.inv.parameters()])

    def unet_now():
        return torch.cat([p.detach().reshape(-1).clone() for p in model.unet.parameters()])

    seen = {}
    for step, metrics in run.steps():
        seen[step] = (inv_now(), unet_now(), metrics["inv_loss"])
    assert all(math.isfinite(seen[s][2]) for s in range(1, 6))
    assert all(math.isnan(seen[s][2]) for s in range(6, 13))
    assert not torch.equal(seen[4][0], seen[5][0])  # trained up to step 5
    for s in range(6, 13):  # then fixed, although AdamW still holds momentum for it
        assert torch.equal(seen[s][0], seen[5][0])
    assert not torch.equal(seen[12][1], seen[5][1])  # the diffusion model trains on
    with pytest.raises(ValueError, match="inverse_steps=0"):
        MADiffConfig(inverse_steps=0)


def test_inverse_learning_rate_steps_the_inverse_dynamics_at_its_own_rate(chase_batch):
    """``inverse_learning_rate``: the inverse-dynamics parameters take AdamW steps at their
    own rate, the diffusion model's exactly as without it (one step from the same start,
    where AdamW's step is the rate times a function of the gradient alone)."""
    from diffusion_agents.madiff.training import TrainingRun

    def one_step(**changes):
        cfg = TINY.replace(n_steps=1, grad_clip=0.0, **changes)
        model = MADiffPolicy._build_model(cfg, MADiffPolicy._model_dims(chase_batch), 0)
        run = TrainingRun.start(model, chase_batch, cfg)
        before = run.flat.data.clone()
        list(run.steps())
        ids = {id(p) for p in model.inv.parameters()}
        inv = torch.cat([p.detach().reshape(-1) for p in model.parameters() if id(p) in ids])
        rest = torch.cat([p.detach().reshape(-1) for p in model.parameters()
                          if id(p) not in ids])
        start = dict(zip([id(p) for p in model.parameters()],
                         before.split([p.numel() for p in model.parameters()])))
        inv0 = torch.cat([start[id(p)] for p in model.parameters() if id(p) in ids])
        rest0 = torch.cat([start[id(p)] for p in model.parameters() if id(p) not in ids])
        return inv - inv0, rest - rest0

    inv_ref, rest_ref = one_step()
    inv_same, rest_same = one_step(inverse_learning_rate=TINY.learning_rate)
    assert torch.equal(inv_same, inv_ref) and torch.equal(rest_same, rest_ref)
    inv_slow, rest_slow = one_step(inverse_learning_rate=TINY.learning_rate / 4)
    assert torch.equal(rest_slow, rest_ref)
    assert inv_ref.abs().max() > 0
    torch.testing.assert_close(inv_slow, inv_ref / 4, rtol=1e-3, atol=1e-9)
    with pytest.raises(ValueError, match="inverse_learning_rate=0"):
        MADiffConfig(inverse_learning_rate=0)


def test_checkpoints_from_before_inverse_steps_load_as_trained(chase_policy, tmp_path):
    """A file written before ``inverse_steps`` existed trained the inverse dynamics for all
    steps: it reads as ``None``, not as today's default (3000)."""
    from diffusion_agents.checkpoint import load_checkpoint, save_checkpoint
    from diffusion_agents.madiff.policy import KIND, VERSION

    assert MADiffConfig().inverse_steps == 3000
    path = chase_policy.save(tmp_path / "new.safetensors")
    tensors, meta = load_checkpoint(path, kind=KIND, versions=(VERSION,))
    assert MADiffPolicy.load(path).config.inverse_steps == chase_policy.config.inverse_steps
    del meta["config"]["inverse_steps"]
    old = save_checkpoint(tmp_path / "old.safetensors", tensors, kind=KIND, version=VERSION, meta=meta)
    assert MADiffPolicy.load(old).config.inverse_steps is None


def test_known_mask_conditions_the_visible_agent_or_all_and_padded_dims():
    """The one mask builder of training, act and the inverse tool: decentralized rows know
    their own agent's history and current step, centralized rows every agent's; padded
    observation dims are always known (they are zeros, never generated)."""
    from diffusion_agents.madiff.model import known_mask

    dim_valid = torch.tensor([[True, True, True], [True, False, False]])  # 2 agents, dims 3 / 1
    window, history = 5, 1
    dec = known_mask(dim_valid, torch.tensor([1, 0, 1]), 3, window, history)
    assert dec.shape == (3, 2, 3, window) and dec.dtype == torch.bool
    for row, vis in enumerate([1, 0, 1]):
        for agent in range(2):
            for dim in range(3):
                for step in range(window):
                    want = (agent == vis and step <= history) or not bool(dim_valid[agent, dim])
                    assert bool(dec[row, agent, dim, step]) == want, (row, agent, dim, step)
    cen = known_mask(dim_valid, None, 2, window, history)
    assert cen.shape == (2, 2, 3, window)
    assert cen[:, :, :, : history + 1].all()
    assert (cen[:, :, :, history + 1 :] == ~dim_valid[None, :, :, None]).all()
