"""make_env: PettingZoo's own API test on what it returns, and clear errors for bad ids."""

from __future__ import annotations

import warnings

import pytest
from pettingzoo.test import parallel_api_test
from pettingzoo.utils.env import ParallelEnv

from wrappers import families, make_env, register_family
from wrappers.registry import mpe2_modules

TOY = "tests.wrappers.toy_envs"


def _api_test(env: ParallelEnv, cycles: int) -> None:
    """Run parallel_api_test and fail on the API warnings it only emits as warnings."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parallel_api_test(env, num_cycles=cycles)
    api = [
        str(w.message)
        for w in caught
        if "was not given" in str(w.message) or "was dead last turn" in str(w.message)
        or "No agents present" in str(w.message)
    ]
    assert not api, api


def test_every_mpe2_module_is_known():
    mods = mpe2_modules()
    for name in ("simple_spread_v3", "simple_adversary_v3", "simple_speaker_listener_v4",
                 "simple_tag_v3", "simple_world_comm_v3", "simple_reference_v3"):
        assert name in mods


@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("module", mpe2_modules())
def test_mpe2_parallel_api(module, continuous):
    env = make_env(f"mpe2/{module}", continuous_actions=continuous, max_cycles=12)
    assert isinstance(env, ParallelEnv)
    space = env.action_space(env.possible_agents[0])
    assert (type(space).__name__ == "Box") == continuous
    _api_test(env, cycles=12)


def test_mpe2_kwargs_reach_the_env():
    env = make_env("mpe2/simple_spread_v3", N=4, max_cycles=3)
    assert len(env.possible_agents) == 4
    env.reset(seed=0)
    steps = 0
    while env.agents:
        env.step({a: 0 for a in env.agents})
        steps += 1
    assert steps == 3


@pytest.mark.parametrize(
    "factory, kwargs",
    [
        ("make_hetero_env", {}),
        ("make_hetero_env", {"mask_worker": True}),
        ("make_masked_env", {"n_agents": 3}),
        ("make_dying_env", {}),
        ("make_dying_env", {"deaths": [1, 3, 2], "max_cycles": 9}),
        ("make_chase_env", {}),
        ("make_spawn_env", {}),
        ("make_odd_spaces_env", {}),
    ],
)
def test_toy_envs_parallel_api(factory, kwargs):
    env = make_env(f"{TOY}:{factory}", **kwargs)
    assert isinstance(env, ParallelEnv)
    _api_test(env, cycles=15)


def test_toy_envs_have_what_the_tests_need():
    het = make_env(f"{TOY}:make_hetero_env")
    obs_dims = {het.observation_space(a).shape[0] for a in het.possible_agents}
    assert len(obs_dims) == 3
    kinds = [repr(het.action_space(a)) for a in het.possible_agents]
    assert kinds == ["Discrete(3)", "Discrete(5)", "Box(-1.0, 1.0, (2,), float32)"]

    masked = make_env(f"{TOY}:make_masked_env")
    obs, _ = masked.reset(seed=0)
    m0 = {a: o["action_mask"].copy() for a, o in obs.items()}
    obs, *_ = masked.step({a: int(o["action_mask"].argmax()) for a, o in obs.items()})
    assert any((m0[a] != obs[a]["action_mask"]).any() for a in obs)  # masks change
    with pytest.raises(ValueError, match="illegal action"):
        masked.step({a: int(o["action_mask"].argmin()) for a, o in obs.items()})

    dying = make_env(f"{TOY}:make_dying_env", deaths=(2, 4, None), max_cycles=6)
    dying.reset(seed=0)
    seen = []
    while dying.agents:
        _, _, terms, truncs, _ = dying.step({a: dying.action_space(a).sample() for a in dying.agents})
        seen.append((sorted(a for a, t in terms.items() if t), sorted(a for a, t in truncs.items() if t)))
    assert seen == [
        ([], []), (["bot_0"], []), ([], []), (["bot_1"], []), ([], []), ([], ["bot_2"])
    ]


# -- bad inputs ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, match",
    [
        ("nosuchfamily/foo", "Unknown env id 'nosuchfamily/foo'"),
        ("simple_spread_v3", "Unknown env id 'simple_spread_v3'"),
        ("mpe2/", "Unknown env id 'mpe2/'"),
        ("mpe2/simple_nothing_v9", "Unknown MPE2 environment 'simple_nothing_v9'"),
        ("mpe2/all_modules", "Unknown MPE2 environment 'all_modules'"),
        ("mpe2/../setup", "Unknown MPE2 environment"),
        ("no_such_pkg.mod:factory", "Cannot import module 'no_such_pkg.mod'"),
        (f"{TOY}:no_such_factory", "has no attribute 'no_such_factory'"),
        (f"{TOY}:", "Bad factory"),
    ],
)
def test_unknown_env_ids(env_id, match):
    with pytest.raises(ValueError, match=match):
        make_env(env_id)


def test_unknown_mpe2_module_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        make_env("mpe2/simple_sprad_v3")
    assert "simple_spread_v3" in str(err.value)


@pytest.mark.parametrize(
    "env_id, kwargs",
    [
        ("mpe2/simple_spread_v3", {"bogus": 1}),
        ("mpe2/simple_speaker_listener_v4", {"N": 3}),
        (f"{TOY}:make_hetero_env", {"n_agents": 2}),
    ],
)
def test_bad_kwargs_name_the_argument(env_id, kwargs):
    with pytest.raises(TypeError) as err:
        make_env(env_id, **kwargs)
    msg = str(err.value)
    assert env_id in msg and repr(next(iter(kwargs))) in msg and "accepted" in msg


def test_non_string_id_and_non_env_factory():
    with pytest.raises(TypeError, match="non-empty string"):
        make_env(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a PettingZoo ParallelEnv"):
        make_env(f"{TOY}:make_not_an_env")


def test_registered_family_is_lazy_and_routes_ids():
    register_family("toyfam", "tests.wrappers.toy_envs:family_factory")
    try:
        assert "toyfam" in families()
        env = make_env("toyfam/hetero", max_cycles=3)
        assert env.possible_agents == ["scout", "worker", "pilot"]
        assert env.max_cycles == 3
        with pytest.raises(ValueError, match="Unknown toy scenario 'nope'"):
            make_env("toyfam/nope")
    finally:
        from wrappers import registry

        registry._FAMILIES.pop("toyfam", None)
    with pytest.raises(ValueError, match="plain name"):
        register_family("a/b", "x:y")

