"""JaxMARL's SMAX (StarCraft-like micromanagement in JAX) as a PettingZoo ``ParallelEnv``.

``make_env("smax/<scenario>", **kwargs)`` builds :class:`SMAXParallelEnv` around JaxMARL's
``HeuristicEnemySMAX``: we control the allies (``ally_0`` ... ``ally_{n-1}``), JaxMARL's
built-in heuristic controls the enemies. Every scenario of JaxMARL's ``map_name_to_scenario``
works (``3m``, ``2s3z``, ``8m``, ``25m``, ``5m_vs_6m``, ``3s_vs_5z``, ``6h_vs_8z``,
``smacv2_5_units``, ``smacv2_10_units``, ``smacv2_20_units``, ...).

What the adapter adds on top of JaxMARL:

- **NumPy, PettingZoo-shaped output.** Each agent observes
  ``{"observation": float32 (obs_dim,), "action_mask": int8 (n_actions,)}`` (PettingZoo's
  action-mask form; ``Box(0, 1, int8)`` as in PettingZoo's classic envs). ``state()`` is
  SMAX's ``world_state`` ``(state_dim,)``.
- **No auto-reset.** JaxMARL's ``MultiAgentEnv.step`` silently resets inside ``step`` when the
  episode ends (the returned observation is then the *next* episode's). We call the
  transition ``step_env`` directly and reset only in :meth:`SMAXParallelEnv.reset`.
- **Deaths the PettingZoo way.** An ally whose unit dies gets ``terminated=True`` (and its
  last observation, reward and info) on that step and leaves ``env.agents``. When the battle
  is decided every remaining ally is terminated; when SMAX's step limit (``max_steps``, 100
  by default) ends the episode they are *truncated*.
- **Win flag and counts** in every agent's info: ``battle_won`` (all enemies dead, one ally
  alive), ``dead_allies``, ``dead_enemies``, ``episode_step``.
- **Team reward.** SMAX's ally reward is already shared (damage dealt, normalized by enemy
  health, plus ``won_battle_bonus`` on a win); each agent present gets it.
- **Compiled once.** Reset and step (JaxMARL transition + observations + masks + world
  state) are each one ``jax.jit`` function, compiled on first use and shared by every env
  built with the same scenario and settings in the process; one device-to-host copy per step.
- **Seeding.** ``reset(seed=s)`` starts from ``jax.random.PRNGKey(s)``; the same seed and
  actions give the same episode. ``reset()`` without a seed continues the key chain.

JAX and JaxMARL are imported only when an env is built (``pip install
"diffusion-agents[smax]"``); importing this module imports neither.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo.utils.env import ParallelEnv

from wrappers.spaces import MaskedDiscreteAgents

INSTALL_HINT = 'pip install "diffusion-agents[smax]"  (installs jaxmarl and jax)'
DEFAULT_SCENARIO = "smacv2_5_units"
# SMAX's "stop" movement action: always legal, the only one for the dead.
STOP_ACTION = 4
INFO_KEYS = ("battle_won", "dead_allies", "dead_enemies")
ILLEGAL_ACTION_MODES = ("raise", "ignore")
# SMAX.__init__ arguments this adapter sets itself (from the scenario) or does not support.
_RESERVED = {"scenario", "num_allies", "num_enemies", "action_type"}


def _import_smax() -> tuple[Any, Any, Any]:
    """``(jax, jax.numpy, jaxmarl.environments.smax)``, or one clear ImportError."""
    try:
        import jax
        import jax.numpy as jnp

        with _quiet_jaxmarl_import():
            from jaxmarl.environments import smax
    except ImportError as exc:
        raise ImportError(
            f"SMAX envs need jax and jaxmarl, which failed to import ({exc}). "
            f"Install them with: {INSTALL_HINT}"
        ) from exc
    return jax, jnp, smax


@contextlib.contextmanager
def _quiet_jaxmarl_import():
    """Importing jaxmarl prints to stdout and (in its mabrax module) resets ``sys.stdout`` and
    ``sys.stderr`` to ``sys.__stdout__``/``sys.__stderr__``, which would undo any capture
    (pytest's included). Swallow the print and put all four streams back afterwards."""
    saved = (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)
    sink = io.StringIO()
    sys.stdout = sys.__stdout__ = sink  # type: ignore[misc]
    sys.__stderr__ = saved[1]  # type: ignore[misc]
    try:
        yield
    finally:
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__ = saved  # type: ignore[misc]


def smax_scenarios() -> list[str]:
    """Names of every scenario JaxMARL's SMAX knows (``map_name_to_scenario``)."""
    _, _, smax = _import_smax()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    del smax
    return sorted(MAP_NAME_TO_SCENARIO)


@dataclass(frozen=True)
class _Compiled:
    """A JaxMARL env and its two jitted functions, shared by envs with the same settings."""

    smax_env: Any
    reset: Any  # key -> (key, state, outputs)
    step: Any  # (key, state, actions int32 (n_allies,)) -> (key, state, outputs)
    num_allies: int
    num_enemies: int
    obs_dim: int
    n_actions: int
    state_dim: int
    max_steps: int
    reset_fn: Any = None  # the functions before jax.jit (to vmap them for batched use)
    step_fn: Any = None
    compiler_options: dict[str, Any] | None = None


_CACHE: OrderedDict[tuple[str, str], _Compiled] = OrderedDict()
_CACHE_SIZE = 8
_CACHE_LOCK = threading.Lock()


def _build(
    scenario: str, smax_kwargs: dict[str, Any], opt_level: int | None
) -> _Compiled:
    jax, jnp, smax = _import_smax()
    from jaxmarl.environments.smax.smax_env import MAP_NAME_TO_SCENARIO

    if scenario not in MAP_NAME_TO_SCENARIO:
        raise ValueError(
            f"Unknown SMAX scenario {scenario!r}. Known: {', '.join(sorted(MAP_NAME_TO_SCENARIO))}."
        )
    env = smax.HeuristicEnemySMAX(
        scenario=MAP_NAME_TO_SCENARIO[scenario], **smax_kwargs
    )
    agents = list(env.agents)
    n, m = env.num_allies, env.num_enemies

    def outputs(state: Any, obs: dict[str, Any]) -> tuple[Any, ...]:
        inner = state.state
        avail = env.get_avail_actions(state)
        ob = jnp.stack([obs[a] for a in agents]).astype(jnp.float32)
        # SMAX's features lie in [-1, 1] by construction; clip float round-off (1.0000001).
        ob = jnp.clip(ob, -1.0, 1.0)
        mask = jnp.stack([avail[a] for a in agents]).astype(jnp.int8)
        return (
            ob,
            mask,
            obs["world_state"].astype(jnp.float32),
            inner.unit_alive[:n],
            inner.unit_alive[n:],
            inner.done,
            inner.step.astype(jnp.int32),
        )

    def _strong(tree: Any) -> Any:
        # Make every leaf strongly typed, so reset's state and step's state share one
        # signature and the step compiles once (weak types would trigger a second compile).
        return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)

    def reset(key: Any) -> tuple[Any, ...]:
        key, sub = jax.random.split(key)
        obs, state = env.reset(sub)
        state = _strong(state)
        return key, state, outputs(state, obs)

    def step(key: Any, state: Any, actions: Any) -> tuple[Any, ...]:
        key, sub = jax.random.split(key)
        act = {a: actions[i] for i, a in enumerate(agents)}
        # step_env: the transition without JaxMARL's auto-reset (MultiAgentEnv.step).
        obs, state, rewards, _dones, _infos = env.step_env(sub, state, act)
        state = _strong(state)
        reward = jnp.stack([rewards[a] for a in agents]).astype(jnp.float32)
        return key, state, outputs(state, obs) + (reward,)

    options = (
        None if opt_level is None else {"xla_backend_optimization_level": opt_level}
    )
    return _Compiled(
        smax_env=env,
        reset=jax.jit(reset, compiler_options=options),
        step=jax.jit(step, compiler_options=options),
        num_allies=n,
        num_enemies=m,
        obs_dim=int(env.observation_spaces[agents[0]].shape[0]),
        n_actions=int(env.action_spaces[agents[0]].n),
        state_dim=int(env.state_size),
        max_steps=int(env.max_steps),
        reset_fn=reset,
        step_fn=step,
        compiler_options=options,
    )


def _compiled(
    scenario: str, smax_kwargs: dict[str, Any], opt_level: int | None
) -> _Compiled:
    key = (scenario, repr((sorted(smax_kwargs.items()), opt_level)))
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    built = _build(scenario, smax_kwargs, opt_level)
    with _CACHE_LOCK:
        _CACHE[key] = built
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return built


@functools.lru_cache(maxsize=1)
def _smax_init_params() -> tuple[str, ...]:
    _, _, smax = _import_smax()
    names = list(inspect.signature(smax.SMAX.__init__).parameters)[1:]
    return tuple(n for n in names if n not in _RESERVED)


class SMAXParallelEnv(
    MaskedDiscreteAgents, ParallelEnv[str, dict[str, np.ndarray], int]
):
    """SMAX with a heuristic enemy, as a PettingZoo ``ParallelEnv`` (see the module doc).

    Args:
        scenario: a JaxMARL SMAX scenario name, e.g. ``"smacv2_5_units"`` or ``"3m"``.
        enemy_shoots: whether the heuristic enemies attack (JaxMARL's default True).
        attack_mode: the enemies' target choice, ``"closest"`` or ``"random"``.
        illegal_actions: ``"raise"`` (default) refuses an action outside the agent's mask,
            naming the agent and its legal actions; ``"ignore"`` passes it to SMAX, which
            treats an impossible attack as doing nothing.
        jit_opt_level: XLA backend optimization level for the compiled reset/step (``None``:
            XLA's default, 3). ``0`` compiles about twice as fast and steps about 10 % slower
            on CPU (``benchmarks/smax_perf.py``): worth it for short runs and tests.
        **smax_kwargs: any other ``jaxmarl...SMAX`` argument, e.g. ``max_steps=100``,
            ``won_battle_bonus=1.0``, ``observation_type="unit_list"|"conic"``,
            ``see_enemy_actions``, ``walls_cause_death``, ``world_steps_per_env_step``.

    Spaces (``n`` allies, ``m`` enemies): ``observation_space(agent)`` is
    ``Dict(observation=Box(-1, 1, (obs_dim,)), action_mask=Box(0, 1, (m + 5,), int8))``;
    ``action_space(agent)`` is ``Discrete(m + 5)`` (0-3 move, 4 stop, ``5 + j`` attack enemy
    ``j``); ``state_space`` is ``Box(-inf, inf, (state_dim,))``.
    """

    metadata = {"name": "smax_v0", "render_modes": [], "is_parallelizable": True}

    def __init__(
        self,
        scenario: str = DEFAULT_SCENARIO,
        *,
        enemy_shoots: bool = True,
        attack_mode: str = "closest",
        illegal_actions: str = "raise",
        jit_opt_level: int | None = None,
        **smax_kwargs: Any,
    ) -> None:
        if illegal_actions not in ILLEGAL_ACTION_MODES:
            raise ValueError(
                f"illegal_actions={illegal_actions!r}; allowed: {list(ILLEGAL_ACTION_MODES)}."
            )
        if attack_mode not in ("closest", "random"):
            raise ValueError(
                f"attack_mode={attack_mode!r}; allowed: ['closest', 'random']."
            )
        action_type = smax_kwargs.pop("action_type", "discrete")
        if action_type != "discrete":
            raise ValueError(
                f"action_type={action_type!r}: the SMAX adapter supports only 'discrete' "
                "actions (with action masks)."
            )
        allowed = _smax_init_params()
        bad = sorted(set(smax_kwargs) - set(allowed))
        if bad:
            raise TypeError(
                f"smax/{scenario} got unknown keyword argument(s) {bad}; accepted: "
                f"{sorted(set(allowed) | {'enemy_shoots', 'attack_mode', 'illegal_actions', 'jit_opt_level'})}."
            )
        self.scenario = scenario
        self.illegal_actions = illegal_actions
        self.smax_kwargs = dict(
            smax_kwargs, enemy_shoots=enemy_shoots, attack_mode=attack_mode
        )
        self._jax, _, _ = _import_smax()
        if jit_opt_level is not None and jit_opt_level not in (0, 1, 2, 3):
            raise ValueError(
                f"jit_opt_level={jit_opt_level!r}; allowed: None, 0, 1, 2, 3."
            )
        self.jit_opt_level = jit_opt_level
        self._init_args = dict(
            smax_kwargs,
            enemy_shoots=enemy_shoots,
            attack_mode=attack_mode,
            illegal_actions=illegal_actions,
            jit_opt_level=jit_opt_level,
        )
        self._c = _compiled(scenario, self.smax_kwargs, jit_opt_level)
        c = self._c
        self.possible_agents = [f"ally_{i}" for i in range(c.num_allies)]
        self.agents: list[str] = []
        self.render_mode = None
        self.n_actions = c.n_actions
        self._build_spaces(spaces.Box(-1.0, 1.0, (c.obs_dim,), np.float32))
        self.state_space = spaces.Box(-np.inf, np.inf, (c.state_dim,), np.float32)
        self._index = {a: i for i, a in enumerate(self.possible_agents)}
        self._key: Any = None
        self._jstate: Any = None
        self._world_state = np.zeros(c.state_dim, np.float32)
        self._masks = np.zeros((c.num_allies, c.n_actions), np.int8)

    @property
    def num_enemies(self) -> int:
        return self._c.num_enemies

    @property
    def max_steps(self) -> int:
        return self._c.max_steps

    @property
    def smax_env(self) -> Any:
        """The underlying ``jaxmarl`` ``HeuristicEnemySMAX``."""
        return self._c.smax_env

    # -- API -------------------------------------------------------------------------------
    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        jax = self._jax
        if seed is not None:
            self._key = jax.random.PRNGKey(int(seed))
        elif self._key is None:
            self._key = jax.random.PRNGKey(
                int(np.random.SeedSequence().generate_state(1)[0])
            )
        self._key, self._jstate, out = self._c.reset(self._key)
        ob, mask, world, ally_alive, enemy_alive, _done, step = jax.device_get(out)
        self.agents = list(self.possible_agents)
        self._masks = mask
        self._world_state = np.asarray(world, np.float32)
        info = self._info(ally_alive, enemy_alive, step)
        obs = {
            a: {"observation": ob[i], "action_mask": mask[i]}
            for i, a in enumerate(self.agents)
        }
        return obs, {a: dict(info) for a in self.agents}

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
                "SMAXParallelEnv.step() called with no agents left (episode over or never "
                "reset); call reset()."
            )
        act = self._action_array(actions)
        jax = self._jax
        self._key, self._jstate, out = self._c.step(self._key, self._jstate, act)
        ob, mask, world, ally_alive, enemy_alive, done, step, reward = jax.device_get(
            out
        )
        self._masks = mask
        self._world_state = np.asarray(world, np.float32)
        info = self._info(ally_alive, enemy_alive, step)
        acting = self.agents
        obs = {
            a: {"observation": ob[self._index[a]], "action_mask": mask[self._index[a]]}
            for a in acting
        }
        rewards = {a: float(reward[self._index[a]]) for a in acting}
        if bool(done):
            decided = (not ally_alive.any()) or (not enemy_alive.any())
            terms = dict.fromkeys(acting, decided)
            truncs = dict.fromkeys(acting, not decided)
            self.agents = []
        else:
            terms = {a: not bool(ally_alive[self._index[a]]) for a in acting}
            truncs = dict.fromkeys(acting, False)
            self.agents = [a for a in acting if not terms[a]]
        return obs, rewards, terms, truncs, {a: dict(info) for a in acting}

    def state(self) -> np.ndarray:
        """SMAX's global ``world_state`` ``(state_dim,)`` after the last reset/step."""
        return self._world_state.copy()

    # -- copies (SuperSuit's vector envs cloudpickle the env) --------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Constructor arguments plus the episode in progress, as NumPy arrays; the copy
        rebuilds its JAX side (reusing this process's compiled functions)."""
        jax = self._jax
        return {
            "scenario": self.scenario,
            "init_args": self._init_args,
            "agents": list(self.agents),
            "key": None if self._key is None else jax.device_get(self._key),
            "jstate": None if self._jstate is None else jax.device_get(self._jstate),
            "world_state": self._world_state,
            "masks": self._masks,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["scenario"], **state["init_args"])
        jnp = self._jax.numpy
        self.agents = state["agents"]
        if state["key"] is not None:
            self._key = jnp.asarray(state["key"])
        if state["jstate"] is not None:
            self._jstate = self._jax.tree.map(jnp.asarray, state["jstate"])
        self._world_state = state["world_state"]
        self._masks = state["masks"]

    def close(self) -> None:
        self.agents = []
        self._jstate = None

    # -- helpers ---------------------------------------------------------------------------
    def _info(
        self, ally_alive: np.ndarray, enemy_alive: np.ndarray, step: Any
    ) -> dict[str, Any]:
        return {
            "battle_won": bool((not enemy_alive.any()) and ally_alive.any()),
            "dead_allies": int((~ally_alive).sum()),
            "dead_enemies": int((~enemy_alive).sum()),
            "episode_step": int(step),
        }

    def _action_array(self, actions: dict[str, Any]) -> np.ndarray:
        out = np.full(self._c.num_allies, STOP_ACTION, np.int32)
        for a, k in self._checked_actions(actions).items():
            i = self._index[a]
            if self.illegal_actions == "raise" and not self._masks[i, k]:
                raise ValueError(
                    f"Action {k} of {a!r} is not allowed by its action mask; legal actions: "
                    f"{np.flatnonzero(self._masks[i]).tolist()} (pass illegal_actions='ignore' "
                    "to let SMAX treat it as a no-op)."
                )
            out[i] = k
        return out


def make_smax_env(scenario: str = DEFAULT_SCENARIO, **kwargs: Any) -> SMAXParallelEnv:
    """``make_env("smax/<scenario>", **kwargs)``: see :class:`SMAXParallelEnv`."""
    return SMAXParallelEnv(scenario, **kwargs)


__all__ = [
    "DEFAULT_SCENARIO",
    "INFO_KEYS",
    "SMAXParallelEnv",
    "make_smax_env",
    "smax_scenarios",
]
