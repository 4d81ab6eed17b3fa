"""SMACv2 (StarCraft II) as a PettingZoo ``ParallelEnv``.

``make_env("smacv2/<scenario>", **kwargs)`` builds :class:`SMACv2ParallelEnv` around SMACv2's
``StarCraftCapabilityEnvWrapper`` (https://github.com/oxwhirl/smacv2). Scenarios:

- the 15 of SMACv2's README, ``protoss|terran|zerg`` x ``5_vs_5``, ``10_vs_10``,
  ``20_vs_20``, ``10_vs_11``, ``20_vs_23`` (any ``<race>_<n>_vs_<m>`` works), with the
  capability configs of SMACv2's ``examples/configs/sc2_gen_<race>.yaml``: weighted unit
  types (protoss stalker/zealot/colossus 0.45/0.45/0.1; terran marine/marauder/medivac
  0.45/0.45/0.1, never all medivacs; zerg zergling/baneling/hydralisk 0.45/0.1/0.45, never all
  banelings) and ``surrounded_and_reflect`` start positions (p = 0.5, 32 x 32);
- ``"custom"`` with your own ``capability_config=`` and ``map_name=`` (also accepted as an
  override on any scenario).

Other keyword arguments go to SMACv2's ``StarCraft2Env`` (``conic_fov``, ``obs_last_action``,
``reward_sparse``, ``seed``, ...); the defaults are those of the race yaml files.

What the adapter adds over SMACv2's own API (``step(actions) -> (reward, terminated, info)``):

- per-agent ``{"observation": float32 (obs_dim,), "action_mask": int8 (n_actions,)}`` from
  ``get_obs()`` / ``get_avail_actions()``; ``state()`` from ``get_state()``;
- the team reward for every agent present;
- dead agents leave the episode: an agent whose only legal action became SMAC's no-op
  (action 0, legal exactly for dead units) is ``terminated`` on that step and removed from
  ``env.agents``; the adapter sends the no-op for it afterwards;
- the end of the battle terminates everyone; SMACv2's episode limit *truncates* them;
- infos carry ``battle_won``, ``dead_allies``, ``dead_enemies`` (SMACv2's own info entries);
- a StarCraft II protocol/connection error raises :class:`SC2ProtocolError` (SMACv2 itself
  restarts the game and reports an ordinary "episode over" with reward 0, which would silently
  corrupt recorded data);
- ``reset(seed=s)`` seeds SMACv2's unit-type and start-position distributions (and, before
  the game is launched, StarCraft II itself); ``close()`` closes the game.

``smacv2`` and StarCraft II are only needed when an env is built. Install (see docs/smac.md):
``pip install git+https://github.com/oxwhirl/smacv2.git``, StarCraft II under ``SC2PATH``
(default ``~/StarCraftII``) and SMACv2's ``SMAC_Maps`` in ``$SC2PATH/Maps``.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import os
import random
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from wrappers.spaces import MaskedDiscreteAgents

INSTALL_HINT = (
    "pip install git+https://github.com/oxwhirl/smacv2.git ; then install StarCraft II "
    "(Linux: Blizzard's s2client-proto package, unpacked to ~/StarCraftII or $SC2PATH) and "
    "copy SMACv2's SMAC_Maps folder into $SC2PATH/Maps (see docs/smac.md)"
)
RACES = ("protoss", "terran", "zerg")
README_SIZES = ((5, 5), (10, 10), (20, 20), (10, 11), (20, 23))
SCENARIOS = tuple(f"{race}_{n}_vs_{m}" for (n, m) in README_SIZES for race in RACES)
NOOP_ACTION = 0  # SMAC: "no-op", legal only (and always) for dead agents
INFO_KEYS = ("battle_won", "dead_allies", "dead_enemies")

# SMACv2's examples/configs/sc2_gen_<race>.yaml
_TEAM_GEN: dict[str, dict[str, Any]] = {
    "protoss": {
        "unit_types": ["stalker", "zealot", "colossus"],
        "weights": [0.45, 0.45, 0.1],
    },
    "terran": {
        "unit_types": ["marine", "marauder", "medivac"],
        "weights": [0.45, 0.45, 0.1],
        "exception_unit_types": ["medivac"],
    },
    "zerg": {
        "unit_types": ["zergling", "baneling", "hydralisk"],
        "weights": [0.45, 0.1, 0.45],
        "exception_unit_types": ["baneling"],
    },
}
# env_args shared by the three yaml files (StarCraft2Env keyword arguments).
DEFAULT_ENV_ARGS: dict[str, Any] = {
    "continuing_episode": False,
    "difficulty": "7",
    "game_version": None,
    "move_amount": 2,
    "obs_all_health": True,
    "obs_instead_of_state": False,
    "obs_last_action": False,
    "obs_own_health": True,
    "obs_pathing_grid": False,
    "obs_terrain_height": False,
    "obs_timestep_number": False,
    "reward_death_value": 10,
    "reward_defeat": 0,
    "reward_negative_scale": 0.5,
    "reward_only_positive": True,
    "reward_scale": True,
    "reward_scale_rate": 20,
    "reward_sparse": False,
    "reward_win": 200,
    "replay_dir": "",
    "replay_prefix": "",
    "conic_fov": False,
    "use_unit_ranges": True,
    "min_attack_range": 2,
    "obs_own_pos": True,
    "num_fov_actions": 12,
    "state_last_action": True,
    "state_timestep_number": False,
    "step_mul": 8,
    "heuristic_ai": False,
    "debug": False,
    "prob_obs_enemy": 0,
}
_SCENARIO_RE = re.compile(r"^(protoss|terran|zerg)_(\d+)_vs_(\d+)$")


class SC2ProtocolError(RuntimeError):
    """StarCraft II stopped answering (a protocol or connection error) mid-episode."""


def capability_config(race: str, n_units: int, n_enemies: int) -> dict[str, Any]:
    """SMACv2's capability config for ``<race>_<n_units>_vs_<n_enemies>`` (README table)."""
    if race not in _TEAM_GEN:
        raise ValueError(f"Unknown race {race!r}; allowed: {list(RACES)}.")
    if n_units < 1 or n_enemies < 1:
        raise ValueError(
            f"Need at least one unit per side, got {n_units} vs {n_enemies}."
        )
    return {
        "n_units": n_units,
        "n_enemies": n_enemies,
        "team_gen": {
            "dist_type": "weighted_teams",
            "observe": True,
            **copy.deepcopy(_TEAM_GEN[race]),
        },
        "start_positions": {
            "dist_type": "surrounded_and_reflect",
            "p": 0.5,
            "n_enemies": n_enemies,
            "map_x": 32,
            "map_y": 32,
        },
    }


def scenario_config(scenario: str) -> tuple[str, dict[str, Any]]:
    """``(map_name, capability_config)`` of a ``<race>_<n>_vs_<m>`` scenario."""
    match = _SCENARIO_RE.match(scenario)
    if not match:
        raise ValueError(
            f"Unknown SMACv2 scenario {scenario!r}: expected '<race>_<n>_vs_<m>' with race in "
            f"{list(RACES)} (README scenarios: {', '.join(SCENARIOS)}), or 'custom' with "
            "capability_config= and map_name=."
        )
    race, n, m = match.group(1), int(match.group(2)), int(match.group(3))
    return f"10gen_{race}", capability_config(race, n, m)


def _import_smacv2() -> Callable[..., Any]:
    """SMACv2's ``StarCraftCapabilityEnvWrapper``, or one clear ImportError."""
    try:
        from smacv2.env.starcraft2.wrapper import StarCraftCapabilityEnvWrapper
    except ImportError as exc:
        raise ImportError(
            f"SMACv2 envs need the smacv2 package, which failed to import ({exc}). "
            f"Install it with: {INSTALL_HINT}"
        ) from exc
    return StarCraftCapabilityEnvWrapper


def _load_factory(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"env_factory {target!r}: expected 'package.module:callable'.")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"Cannot load env_factory {target!r}: {exc}") from None


def _check_starcraft(map_name: str) -> None:
    """Fail early, with the fix, when StarCraft II or SMACv2's maps are missing."""
    root = Path(os.environ.get("SC2PATH") or Path.home() / "StarCraftII")
    if not root.is_dir():
        raise FileNotFoundError(
            f"StarCraft II not found at {root} (set SC2PATH to the game folder). {INSTALL_HINT}"
        )
    if map_name.startswith("10gen_"):
        needed = root / "Maps" / "SMAC_Maps" / "32x32_flat.SC2Map"
        if not needed.is_file():
            raise FileNotFoundError(
                f"SMACv2 map {needed} is missing: copy SMACv2's SMAC_Maps folder (with "
                f"32x32_flat.SC2Map) into {root / 'Maps'}."
            )


def _rngs(obj: Any, depth: int = 0) -> list[tuple[Any, str]]:
    """Every ``(owner, attribute)`` holding a NumPy Generator in a SMACv2 distribution."""
    found: list[tuple[Any, str]] = []
    if depth > 3 or not hasattr(obj, "__dict__"):
        return found
    for name, value in sorted(vars(obj).items()):
        if isinstance(value, np.random.Generator):
            found.append((obj, name))
        elif hasattr(value, "generate") and hasattr(value, "__dict__"):
            found.extend(_rngs(value, depth + 1))  # a nested distribution
    return found


class SMACv2ParallelEnv(
    MaskedDiscreteAgents, ParallelEnv[str, dict[str, np.ndarray], int]
):
    """A SMACv2 scenario as a PettingZoo ``ParallelEnv`` (see the module docstring).

    Args:
        scenario: ``"<race>_<n>_vs_<m>"`` (e.g. ``"protoss_5_vs_5"``) or ``"custom"``.
        capability_config: SMACv2 capability config (``n_units``, ``n_enemies``,
            ``team_gen``, ``start_positions``, ...); required for ``"custom"``, else an
            override. Copied: SMACv2 edits the dict it is given.
        map_name: SMACv2 map, e.g. ``"10gen_terran"``; required for ``"custom"``.
        env_factory: builds the SMACv2 env from keyword arguments (a callable or a
            ``"module:attr"`` string, which keeps ``env_kwargs`` JSON-able for datasets);
            default SMACv2's ``StarCraftCapabilityEnvWrapper``. Tests pass a stand-in here.
        **env_args: ``StarCraft2Env`` keyword arguments, over ``DEFAULT_ENV_ARGS``.
    """

    metadata = {"name": "smacv2_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        scenario: str = "protoss_5_vs_5",
        *,
        capability_config: dict[str, Any] | None = None,
        map_name: str | None = None,
        env_factory: Callable[..., Any] | str | None = None,
        **env_args: Any,
    ) -> None:
        if scenario == "custom":
            if capability_config is None or map_name is None:
                raise ValueError(
                    "smacv2/custom needs capability_config= (n_units, n_enemies, team_gen, "
                    "start_positions, ...) and map_name= (e.g. '10gen_terran')."
                )
            default_map, config = map_name, capability_config
        else:
            default_map, config = scenario_config(scenario)
            config = capability_config if capability_config is not None else config
        self.scenario = scenario
        self.map_name = map_name or default_map
        self.capability_config = copy.deepcopy(config)
        if (
            not isinstance(config, dict)
            or "n_units" not in config
            or "n_enemies" not in config
        ):
            raise ValueError(
                f"capability_config must be a dict with 'n_units' and 'n_enemies', got {config!r}."
            )
        if isinstance(env_factory, str):
            env_factory = _load_factory(env_factory)
        if env_factory is None:
            env_factory = _import_smacv2()
            _check_starcraft(self.map_name)
            accepted = self._accepted_args()
        else:
            accepted = None
        kwargs = {
            k: v
            for k, v in DEFAULT_ENV_ARGS.items()
            if accepted is None or k in accepted
        }
        if accepted is not None:
            bad = sorted(set(env_args) - accepted)
            if bad:
                raise TypeError(
                    f"smacv2/{scenario} got unknown keyword argument(s) {bad}; StarCraft2Env "
                    f"accepts: {sorted(accepted)}."
                )
        kwargs.update(env_args)
        kwargs.update(
            map_name=self.map_name,
            capability_config=copy.deepcopy(self.capability_config),
        )
        self.env_args = kwargs
        self._env = env_factory(**kwargs)
        info = self._env.get_env_info()
        self.n_agents = int(info["n_agents"])
        self.n_enemies = int(getattr(self._env, "n_enemies", config["n_enemies"]))
        self.n_actions = int(info["n_actions"])
        self.episode_limit = int(info["episode_limit"])
        obs_dim, state_dim = int(info["obs_shape"]), int(info["state_shape"])
        self.possible_agents = [f"ally_{i}" for i in range(self.n_agents)]
        self.agents: list[str] = []
        self.render_mode = None
        self._build_spaces(spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32))
        self.state_space = spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)
        self._masks = np.zeros((self.n_agents, self.n_actions), np.int8)
        self._state = np.zeros(state_dim, np.float32)
        self._launched = False
        self._closed = False

    @staticmethod
    def _accepted_args() -> set[str]:
        from smacv2.env.starcraft2.starcraft2 import StarCraft2Env

        names = set(inspect.signature(StarCraft2Env.__init__).parameters) - {"self"}
        return names - {"map_name", "capability_config"}

    @property
    def smacv2_env(self) -> Any:
        """The wrapped SMACv2 ``StarCraftCapabilityEnvWrapper``."""
        return self._env

    # -- API -------------------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        if self._closed:
            raise RuntimeError(
                "SMACv2ParallelEnv.reset() after close(); build a new env."
            )
        if seed is not None:
            self._seed(int(seed))
        restarts = self._counter("force_restarts")
        self._env.reset()
        if self._counter("force_restarts") > restarts:
            # SMACv2 restarted StarCraft II inside reset; the episode may be half set up.
            restarts = self._counter("force_restarts")
            self._env.reset()
            if self._counter("force_restarts") > restarts:
                self.agents = []
                raise SC2ProtocolError(
                    "StarCraft II failed twice while resetting (protocol/connection error; "
                    "SMACv2 restarted the game each time). Check the game install and logs."
                )
        self._launched = True
        self.agents = list(self.possible_agents)
        obs, masks = self._observe()
        alive = masks[:, NOOP_ACTION] == 0
        self.agents = [a for i, a in enumerate(self.possible_agents) if alive[i]]
        info = {
            "battle_won": False,
            "dead_allies": int((~alive).sum()),
            "dead_enemies": 0,
        }
        return {a: obs[a] for a in self.agents}, {a: dict(info) for a in self.agents}

    def step(
        self, actions: dict[str, Any]
    ) -> tuple[
        dict[str, Any],
        dict[str, float],
        dict[str, bool],
        dict[str, bool],
        dict[str, Any],
    ]:
        if not self.agents:
            raise RuntimeError(
                "SMACv2ParallelEnv.step() called with no agents left (episode over or never "
                "reset); call reset()."
            )
        joint = self._action_list(actions)
        restarts, timeouts = self._counter("force_restarts"), self._counter("timeouts")
        reward, terminated, info = self._env.step(joint)
        restarted = self._counter("force_restarts") > restarts
        if restarted or (terminated and not info):
            self.agents = []
            raise SC2ProtocolError(
                "StarCraft II stopped answering during step() (protocol/connection error). "
                "SMACv2 restarted the game and reported the episode as over with reward 0; "
                "this step is not a real transition, so the episode is dropped. Call reset()."
            )
        acting = self.agents
        obs, masks = self._observe()
        info = dict(info or {})
        out_info = {
            "battle_won": bool(info.get("battle_won", False)),
            "dead_allies": int(info.get("dead_allies", 0)),
            "dead_enemies": int(info.get("dead_enemies", 0)),
        }
        if "episode_limit" in info:
            out_info["episode_limit"] = bool(info["episode_limit"])
        rewards = dict.fromkeys(acting, float(reward))
        if terminated:
            timeout = self._is_timeout(info, timeouts, out_info)
            terms = dict.fromkeys(acting, not timeout)
            truncs = dict.fromkeys(acting, timeout)
            self.agents = []
        else:
            index = {a: i for i, a in enumerate(self.possible_agents)}
            terms = {a: bool(masks[index[a], NOOP_ACTION]) for a in acting}
            truncs = dict.fromkeys(acting, False)
            self.agents = [a for a in acting if not terms[a]]
        return (
            {a: obs[a] for a in acting},
            rewards,
            terms,
            truncs,
            {a: dict(out_info) for a in acting},
        )

    def state(self) -> np.ndarray:
        """SMACv2's global state ``(state_dim,)`` after the last reset/step."""
        return self._state.copy()

    def close(self) -> None:
        """Close StarCraft II (idempotent)."""
        if not self._closed:
            self._closed = True
            self.agents = []
            self._env.close()

    # -- helpers ---------------------------------------------------------------------------
    def _counter(self, name: str) -> int:
        return int(getattr(self._env, name, 0) or 0)

    def _is_timeout(
        self, info: dict[str, Any], timeouts_before: int, out: dict[str, Any]
    ) -> bool:
        if out["battle_won"]:
            return False
        if hasattr(self._env, "timeouts"):
            return self._counter("timeouts") > timeouts_before
        # Without the counter: the battle is undecided while both sides have units left.
        return (
            out["dead_allies"] < self.n_agents and out["dead_enemies"] < self.n_enemies
        )

    def _seed(self, seed: int) -> None:
        children = np.random.SeedSequence(seed).spawn(64)
        dists = getattr(self._env, "env_key_to_distribution_map", {}) or {}
        rngs = [r for d in dists.values() for r in _rngs(d)]
        for k, (owner, name) in enumerate(rngs):
            setattr(owner, name, np.random.default_rng(children[k % len(children)]))
        # SMACv2's team distributions also shuffle with Python's global ``random``.
        random.seed(seed)
        if (
            not self._launched
            and hasattr(self._env, "env")
            and hasattr(self._env.env, "_seed")
        ):
            self._env.env._seed = (
                seed  # StarCraft II's own seed, used when the game launches
            )

    def _observe(self) -> tuple[dict[str, Any], np.ndarray]:
        obs = np.asarray(self._env.get_obs(), dtype=np.float32)
        masks = np.asarray(self._env.get_avail_actions(), dtype=np.int8)
        if obs.shape[0] != self.n_agents or masks.shape != (
            self.n_agents,
            self.n_actions,
        ):
            raise SC2ProtocolError(
                f"SMACv2 returned observations {obs.shape} / masks {masks.shape}, expected "
                f"({self.n_agents}, obs_dim) / ({self.n_agents}, {self.n_actions})."
            )
        self._masks = masks
        self._state = np.asarray(self._env.get_state(), dtype=np.float32).reshape(-1)
        return (
            {
                a: {"observation": obs[i], "action_mask": masks[i]}
                for i, a in enumerate(self.possible_agents)
            },
            masks,
        )

    def _action_list(self, actions: dict[str, Any]) -> list[int]:
        joint = [NOOP_ACTION] * self.n_agents
        for a, k in self._checked_actions(actions).items():
            i = self.possible_agents.index(a)
            if not self._masks[i, k]:
                raise ValueError(
                    f"Action {k} of {a!r} is not allowed by its action mask; legal actions: "
                    f"{np.flatnonzero(self._masks[i]).tolist()}."
                )
            joint[i] = k
        return joint


def make_smacv2_env(
    scenario: str = "protoss_5_vs_5", **kwargs: Any
) -> SMACv2ParallelEnv:
    """``make_env("smacv2/<scenario>", **kwargs)``: see :class:`SMACv2ParallelEnv`."""
    return SMACv2ParallelEnv(scenario, **kwargs)


__all__ = [
    "DEFAULT_ENV_ARGS",
    "INFO_KEYS",
    "SCENARIOS",
    "SC2ProtocolError",
    "SMACv2ParallelEnv",
    "capability_config",
    "make_smacv2_env",
    "scenario_config",
]
