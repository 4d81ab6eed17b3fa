"""SMACv2 adapter contract tests.

StarCraft II cannot be installed here, so most tests drive the adapter with
:class:`StarCraftStandIn`, a small scripted stand-in that follows the methods and return
values of SMACv2's ``StarCraftCapabilityEnvWrapper`` (it is NOT a StarCraft II simulation).
Where ``smacv2`` and the game are installed, ``test_real_smacv2_parallel_api`` runs
PettingZoo's ``parallel_api_test`` on a real scenario; elsewhere it is skipped with a reason.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from wrappers import RandomPolicy, load_episodes, make_env, record_dataset
from wrappers.smacv2 import (
    INFO_KEYS,
    SCENARIOS,
    SC2ProtocolError,
    SMACv2ParallelEnv,
    scenario_config,
)

STAND_IN = "tests.wrappers.test_smacv2:StarCraftStandIn"


class _StandInTeams:
    """Like SMACv2's ``WeightedTeamsDistribution``: ``generate()`` and an ``rng``."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.units = list(config["unit_types"])
        self.n_units = config["n_units"]
        self.rng = np.random.default_rng()

    def generate(self) -> dict[str, Any]:
        team = list(self.rng.choice(self.units, size=self.n_units))
        return {"team_gen": {"ally_team": team, "enemy_team": team, "id": 0}}


class StarCraftStandIn:
    """STAND-IN for SMACv2's ``StarCraftCapabilityEnvWrapper``: no StarCraft II behind it.

    It follows SMACv2's documented API: ``get_env_info()``, ``reset() -> (obs, state)``,
    ``get_obs()``, ``get_state()``, ``get_avail_actions()``, ``get_avail_agent_actions(i)``,
    ``step(actions) -> (reward, terminated, info)``, ``close()``, and the counters
    ``force_restarts`` / ``timeouts``. SMAC's action layout: 0 no-op (dead only), 1 stop,
    2-5 move, ``6 + e`` attack enemy ``e``. The battle is scripted:

    - ``deaths``: ``{step: [ally ids]}`` allies killed at that step;
    - ``kills``: ``{step: n}`` enemies killed at that step (all killed -> battle won);
    - ``protocol_error_at``: the step at which "the game" stops answering; like SMACv2 the
      stand-in then restarts (``force_restarts += 1``) and returns ``(0, True, {})``.
    """

    def __init__(
        self,
        *,
        capability_config: dict[str, Any],
        map_name: str,
        episode_limit: int = 6,
        deaths: dict[int, list[int]] | None = None,
        kills: dict[int, int] | None = None,
        protocol_error_at: int | None = None,
        **env_args: Any,
    ) -> None:
        self.capability_config = capability_config
        self.map_name = map_name
        self.env_args = env_args
        self.n_agents = capability_config["n_units"]
        self.n_enemies = capability_config["n_enemies"]
        self.n_actions = 6 + self.n_enemies
        self.episode_limit = episode_limit
        self.deaths = {int(k): v for k, v in (deaths or {}).items()}
        self.kills = {int(k): v for k, v in (kills or {}).items()}
        self.protocol_error_at = protocol_error_at
        team_cfg = dict(capability_config["team_gen"], n_units=self.n_agents)
        self.env_key_to_distribution_map = {"team_gen": _StandInTeams(team_cfg)}
        self.force_restarts = self.timeouts = self.battles_won = 0
        self.closed = False
        self.received: list[list[int]] = []
        self._t = 0
        self._ally_alive = np.ones(self.n_agents, bool)
        self._enemies_alive = self.n_enemies
        self._team_code = np.zeros(self.n_agents)

    def get_env_info(self) -> dict[str, Any]:
        return {
            "state_shape": self.n_agents * 3 + self.n_enemies,
            "obs_shape": 4 + self.n_agents,
            "cap_shape": 3,
            "n_actions": self.n_actions,
            "n_agents": self.n_agents,
            "episode_limit": self.episode_limit,
        }

    def reset(self):
        config = self.env_key_to_distribution_map["team_gen"].generate()
        units = self.capability_config["team_gen"]["unit_types"]
        self._team_code = np.array(
            [units.index(u) for u in config["team_gen"]["ally_team"]]
        )
        self._t = 0
        self._ally_alive[:] = True
        self._enemies_alive = self.n_enemies
        return self.get_obs(), self.get_state()

    def get_obs_agent(self, agent_id: int) -> np.ndarray:
        if not self._ally_alive[agent_id]:
            return np.zeros(4 + self.n_agents, np.float32)
        own = np.eye(self.n_agents)[agent_id]
        feats = [
            self._t / self.episode_limit,
            self._team_code[agent_id],
            self._enemies_alive,
            1.0,
        ]
        return np.concatenate([feats, own]).astype(np.float32)

    def get_obs(self) -> list[np.ndarray]:
        return [self.get_obs_agent(i) for i in range(self.n_agents)]

    def get_state(self) -> np.ndarray:
        allies = np.stack(
            [self._ally_alive, self._team_code, np.full(self.n_agents, self._t)], 1
        )
        enemies = np.arange(self.n_enemies) < self._enemies_alive
        return np.concatenate([allies.reshape(-1), enemies]).astype(np.float32)

    def get_avail_agent_actions(self, agent_id: int) -> list[int]:
        if not self._ally_alive[agent_id]:
            return [1] + [0] * (self.n_actions - 1)
        avail = [0, 1, 1, 1, 1, 1] + [0] * self.n_enemies
        for e in range(self._enemies_alive):
            if (e + self._t) % 2 == 0:  # "in range" on alternate steps
                avail[6 + e] = 1
        return avail

    def get_avail_actions(self) -> list[list[int]]:
        return [self.get_avail_agent_actions(i) for i in range(self.n_agents)]

    def step(self, actions):
        actions = [int(a) for a in actions]
        self.received.append(actions)
        for a_id, action in enumerate(actions):
            assert self.get_avail_agent_actions(a_id)[action] == 1, (
                f"Agent {a_id} cannot perform action {action}"
            )
        self._t += 1
        if self.protocol_error_at == self._t:
            self.force_restarts += 1  # SMACv2: full_restart(); return 0, True, {}
            return 0, True, {}
        for a_id in self.deaths.get(self._t, []):
            self._ally_alive[a_id] = False
        killed = min(self.kills.get(self._t, 0), self._enemies_alive)
        self._enemies_alive -= killed
        reward = 0.5 * killed
        info = {
            "battle_won": False,
            "dead_allies": int((~self._ally_alive).sum()),
            "dead_enemies": self.n_enemies - self._enemies_alive,
        }
        terminated = False
        if self._enemies_alive == 0 and self._ally_alive.any():
            terminated, info["battle_won"] = True, True
            self.battles_won += 1
            reward += 10.0
        elif not self._ally_alive.any():
            terminated = True
        elif self._t >= self.episode_limit:
            terminated = True
            self.timeouts += 1
        return reward, terminated, info

    def close(self) -> None:
        self.closed = True


def stand_in_env(scenario: str = "protoss_5_vs_5", **script: Any) -> SMACv2ParallelEnv:
    return make_env(f"smacv2/{scenario}", env_factory=STAND_IN, **script)


def _run(env, policy, obs):
    return env.step(policy.act({a: obs[a] for a in env.agents}))


# -- configuration -------------------------------------------------------------------------


def test_readme_scenarios_have_smacv2_capability_configs():
    assert len(SCENARIOS) == 15
    for name in SCENARIOS:
        race, n, _, m = name.split("_")
        map_name, cfg = scenario_config(name)
        assert map_name == f"10gen_{race}"
        assert (cfg["n_units"], cfg["n_enemies"]) == (int(n), int(m))
        assert cfg["start_positions"]["dist_type"] == "surrounded_and_reflect"
        assert cfg["start_positions"]["p"] == 0.5
        assert cfg["team_gen"]["dist_type"] == "weighted_teams"
        assert sum(cfg["team_gen"]["weights"]) == pytest.approx(1.0)
    assert scenario_config("terran_5_vs_5")[1]["team_gen"]["exception_unit_types"] == [
        "medivac"
    ]
    assert scenario_config("zerg_5_vs_5")[1]["team_gen"]["weights"] == [0.45, 0.1, 0.45]
    assert (
        "exception_unit_types" not in scenario_config("protoss_5_vs_5")[1]["team_gen"]
    )
    with pytest.raises(ValueError, match="Unknown SMACv2 scenario 'elves_5_vs_5'"):
        scenario_config("elves_5_vs_5")


@pytest.mark.skipif(
    importlib.util.find_spec("smacv2") is not None, reason="smacv2 is installed here"
)
def test_missing_smacv2_gives_install_instructions():
    with pytest.raises(
        ImportError, match="pip install git\\+https://github.com/oxwhirl/smacv2"
    ):
        make_env("smacv2/protoss_5_vs_5")


def test_custom_scenario_and_bad_config():
    with pytest.raises(ValueError, match="smacv2/custom needs capability_config"):
        make_env("smacv2/custom", env_factory=STAND_IN)
    _, cfg = scenario_config("zerg_5_vs_5")
    cfg.update(n_units=3, n_enemies=4)
    env = make_env(
        "smacv2/custom",
        env_factory=STAND_IN,
        map_name="10gen_zerg",
        capability_config=cfg,
    )
    assert env.possible_agents == ["ally_0", "ally_1", "ally_2"]
    assert env.action_space("ally_0").n == 6 + 4
    assert env.smacv2_env.map_name == "10gen_zerg"
    with pytest.raises(ValueError, match="'n_units' and 'n_enemies'"):
        make_env(
            "smacv2/custom", env_factory=STAND_IN, map_name="x", capability_config={}
        )


# -- the contract --------------------------------------------------------------------------


def test_shapes_spaces_and_arguments_passed_to_smacv2():
    env = stand_in_env("terran_10_vs_11", conic_fov=False)
    sc = env.smacv2_env
    assert sc.map_name == "10gen_terran"
    assert sc.capability_config["n_enemies"] == 11
    assert sc.env_args["use_unit_ranges"] is True and sc.env_args["obs_own_pos"] is True
    assert env.possible_agents == [f"ally_{i}" for i in range(10)]
    obs, infos = env.reset(seed=0)
    assert set(obs) == set(infos) == set(env.possible_agents)
    for a in env.agents:
        space = env.observation_space(a)
        assert obs[a]["observation"].shape == space["observation"].shape == (14,)
        assert obs[a]["observation"].dtype == np.float32
        assert obs[a]["action_mask"].shape == space["action_mask"].shape == (17,)
        assert obs[a]["action_mask"].dtype == np.int8
        assert space.contains(obs[a])
        assert env.action_space(a).n == 17
    assert env.state().shape == env.state_space.shape == (41,)


def test_parallel_api_test_on_stand_in():
    env = stand_in_env(deaths={2: [1], 4: [0, 3]}, kills={3: 2}, episode_limit=8)
    parallel_api_test(env, num_cycles=50)


def test_dead_agent_leaves_and_gets_noop():
    env = stand_in_env(deaths={2: [1]}, episode_limit=5)
    obs, _ = env.reset(seed=0)
    policy = RandomPolicy(env, seed=0)
    obs, rew, terms, truncs, infos = _run(env, policy, obs)
    assert not any(terms.values()) and len(env.agents) == 5
    obs, rew, terms, truncs, infos = _run(env, policy, obs)
    assert terms["ally_1"] and not any(v for a, v in terms.items() if a != "ally_1")
    assert "ally_1" in obs and not obs["ally_1"]["observation"].any()
    assert infos["ally_0"]["dead_allies"] == 1
    assert "ally_1" not in env.agents and len(env.agents) == 4
    with pytest.raises(KeyError, match="unknown agents"):
        env.step({a: 1 for a in [*env.agents, "ally_99"]})
    # The gone agent's action (what `env.step(policy.act(obs))` sends) is ignored.
    obs, rew, terms, *_ = env.step({a: 1 for a in [*env.agents, "ally_1"]})
    assert "ally_1" not in obs
    assert env.smacv2_env.received[-1][1] == 0  # SMAC's no-op sent for the dead agent


def test_battle_won_terminates_everyone_with_counts():
    env = stand_in_env(deaths={1: [4]}, kills={2: 3, 3: 2})
    obs, _ = env.reset(seed=1)
    policy = RandomPolicy(env, seed=1)
    total = 0.0
    while env.agents:
        obs, rew, terms, truncs, infos = _run(env, policy, obs)
        total += rew[next(iter(rew))]
    assert all(terms.values()) and not any(truncs.values())
    info = next(iter(infos.values()))
    assert info == {"battle_won": True, "dead_allies": 1, "dead_enemies": 5}
    assert total == pytest.approx(0.5 * 5 + 10.0)


def test_episode_limit_truncates_and_defeat_terminates():
    env = stand_in_env(episode_limit=3)
    obs, _ = env.reset(seed=0)
    policy = RandomPolicy(env, seed=0)
    while env.agents:
        obs, rew, terms, truncs, infos = _run(env, policy, obs)
    assert all(truncs.values()) and not any(terms.values())
    assert not next(iter(infos.values()))["battle_won"]

    env = stand_in_env(deaths={2: [0, 1, 2, 3, 4]})
    obs, _ = env.reset(seed=0)
    while env.agents:
        obs, rew, terms, truncs, infos = _run(env, policy, obs)
    assert all(terms.values()) and not any(truncs.values())
    assert next(iter(infos.values()))["dead_allies"] == 5


def test_protocol_error_is_an_error_not_an_episode_end():
    env = stand_in_env(protocol_error_at=2)
    obs, _ = env.reset(seed=0)
    policy = RandomPolicy(env, seed=0)
    obs, *_ = _run(env, policy, obs)
    with pytest.raises(SC2ProtocolError, match="stopped answering"):
        _run(env, policy, obs)
    assert env.agents == []
    with pytest.raises(RuntimeError, match="call reset"):
        env.step({})
    env.smacv2_env.protocol_error_at = None
    obs, _ = env.reset(seed=0)
    assert len(env.agents) == 5


def test_masked_action_refused_before_reaching_starcraft():
    env = stand_in_env()
    obs, _ = env.reset(seed=0)
    illegal = int(np.flatnonzero(obs["ally_0"]["action_mask"] == 0)[0])
    with pytest.raises(
        ValueError, match=f"Action {illegal} of 'ally_0' is not allowed"
    ):
        env.step({a: (illegal if a == "ally_0" else 1) for a in env.agents})
    assert env.smacv2_env.received == []


def test_seed_reproduces_generated_teams():
    env = stand_in_env("protoss_20_vs_20")
    first = env.reset(seed=3)[0]["ally_0"]["observation"], env.state()
    env.reset(seed=4)
    again = env.reset(seed=3)[0]["ally_0"]["observation"], env.state()
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    states = set()
    for s in range(5):
        env.reset(seed=s)
        states.add(tuple(env.state()))
    assert len(states) > 1, "different seeds should generate different teams"


def test_close_releases_the_game():
    env = stand_in_env()
    env.reset(seed=0)
    env.close()
    assert env.smacv2_env.closed and env.agents == []
    env.close()  # idempotent
    with pytest.raises(RuntimeError, match="after close"):
        env.reset()


def test_stand_in_dataset_round_trips():
    kwargs = {"env_factory": STAND_IN, "deaths": {2: [1], 3: [0]}, "kills": {4: 5}}
    env = make_env("smacv2/protoss_5_vs_5", **kwargs)
    ds = record_dataset(
        "smacv2/protoss_5_vs_5",
        RandomPolicy(env, seed=0),
        num_episodes=3,
        dataset_id="smacv2/standin/random-v0",
        env_kwargs=kwargs,
        info_keys=INFO_KEYS,
        num_ref_episodes=2,
        show_progress=False,
    )
    batch = load_episodes(ds)
    assert batch.lengths.tolist() == [4, 4, 4]
    assert batch.alive[:, 3, 1].sum() == 0 and batch.alive[:, 2, 1].all()
    e, t, i = np.nonzero(batch.acted)
    assert batch.action_masks[e, t, i, batch.actions[e, t, i, 0].astype(int)].all()
    assert batch.returns == pytest.approx([12.5] * 3)
    assert batch.states.shape == (3, 5, env.state_space.shape[0])


# -- the real game, where installed --------------------------------------------------------


def _starcraft_installed() -> bool:
    root = Path(os.environ.get("SC2PATH") or Path.home() / "StarCraftII")
    return (root / "Maps" / "SMAC_Maps" / "32x32_flat.SC2Map").is_file()


def test_real_smacv2_parallel_api():
    pytest.importorskip(
        "smacv2", reason="smacv2 is not installed (StarCraft II tests skipped)"
    )
    if not _starcraft_installed():
        pytest.skip("StarCraft II with SMACv2's maps not found under SC2PATH")
    env = make_env("smacv2/protoss_5_vs_5")
    try:
        parallel_api_test(env, num_cycles=100)
    finally:
        env.close()
