"""SMAX behaviour datasets: a batched training env for shared PPO, and win rates.

:func:`benchmarks.behaviour.build_datasets` trains shared-parameter (Maskable)PPO on a
SuperSuit vector env that steps each env copy through the PettingZoo adapter, one JAX call
per copy per step. For SMAX that is the bottleneck, so ``benchmarks.behaviour_policy.make_vec_env``
hands ``smax/...`` ids to :func:`make_smax_vec_env` here: one jitted, ``vmap``-ed call steps
every copy at once (2.8x the agent-steps per second on the busy 2-core dev machine, see
``python -m benchmarks.behaviour_smax --speed``). Its slots, observations, rewards, dones and
masks are exactly those of the generic pipeline (``FlatAgentsEnv`` + SuperSuit):

- one vector slot per (env copy, agent); input ``[action mask | observation | one-hot agent]``
  (:class:`~benchmarks.behaviour_policy.AgentEncoder`), so the trained model acts through
  :class:`~benchmarks.behaviour_policy.BehaviourPolicy` on the PettingZoo env unchanged;
- an agent that died keeps its final real observation on its death step, then the "dead"
  input (zeros, only action 0 legal) and reward 0, its actions ignored, until the episode
  ends for every agent of its copy; a time-limit end sets ``TimeLimit.truncated`` and
  ``terminal_observation`` so SB3 bootstraps.

The datasets themselves are recorded through the PettingZoo adapter by ``build_datasets``,
like every other env's. Build them (``expert``/``medium``/``poor``/``random``/
``medium-replay``) and print returns and win rates with::

    python -m benchmarks.behaviour_smax --timesteps 1000000 --episodes 500
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from wrappers import make_env
from wrappers.smax import STOP_ACTION, SMAXParallelEnv

DEFAULT_SMAX_ENV = "smax/smacv2_5_units"


_BATCHED: dict[tuple[int, int], tuple[Any, Any]] = {}


def _batched(c: Any, n_envs: int) -> tuple[Any, Any]:
    """Jitted ``vmap``-ed reset/step of a compiled SMAX config, cached per batch size."""
    key = (id(c), n_envs)
    if key not in _BATCHED:
        from wrappers.smax import _import_smax

        jax, jnp, _ = _import_smax()
        vreset, vstep = jax.vmap(c.reset_fn), jax.vmap(c.step_fn)

        def step_all(keys, states, actions):
            keys, stepped, out = vstep(keys, states, actions)
            done = out[5]
            reset_keys, fresh, reset_out = vreset(keys)

            def pick(new, old):
                return jnp.where(
                    done.reshape(done.shape + (1,) * (new.ndim - 1)), new, old
                )

            # A finished copy resets from its key chain, like SMAXParallelEnv.reset() would.
            states = jax.tree.map(pick, fresh, stepped)
            return pick(reset_keys, keys), states, out, reset_out

        opts = c.compiler_options
        _BATCHED[key] = (
            jax.jit(vreset, compiler_options=opts),
            jax.jit(step_all, compiler_options=opts),
        )
    return _BATCHED[key]


class SMAXVecEnv(VecEnv):
    """``n_envs`` SMAX copies stepped by one jitted ``vmap``; ``n_envs * agents`` SB3 slots.

    Slot ``b * agents + i`` is agent ``i`` of copy ``b``. Copy ``b`` starts from seed
    ``seed + b`` and resets itself when its episode ends (SB3's VecEnv convention, with the
    final observation in ``infos[slot]["terminal_observation"]``).
    """

    def __init__(
        self,
        env_id: str,
        env_kwargs: Mapping[str, Any] | None = None,
        *,
        n_envs: int = 8,
        seed: int = 0,
    ) -> None:
        from benchmarks.behaviour_policy import AgentEncoder

        proto = make_env(env_id, **dict(env_kwargs or {}))
        if not isinstance(proto, SMAXParallelEnv):
            raise TypeError(
                f"{env_id!r} is not a SMAX env (got {type(proto).__name__})."
            )
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}.")
        self.proto = proto
        self.encoder = AgentEncoder.from_env(proto)
        jax = proto._jax
        c = proto._c
        self.n_copies, self.n_agents = n_envs, c.num_allies
        self.n_actions, self.obs_dim = c.n_actions, c.obs_dim
        width = self.n_actions + self.obs_dim + self.n_agents
        if self.encoder.input_dim != width or self.encoder.mask_width != self.n_actions:
            raise ValueError(
                f"AgentEncoder layout changed (input {self.encoder.input_dim}, mask "
                f"{self.encoder.mask_width}); SMAXVecEnv expects [mask | obs | one-hot]."
            )
        self._jax = jax
        self._reset_all, self._step_all = _batched(c, n_envs)
        self._seed = seed
        self._eye = np.eye(self.n_agents, dtype=np.float32)
        dead = np.zeros(width, np.float32)
        dead[0] = 1.0
        self._dead = dead
        self._actions = np.zeros(n_envs * self.n_agents, np.int64)
        self._alive = np.ones((n_envs, self.n_agents), bool)
        self._obs = np.zeros((n_envs * self.n_agents, width), np.float32)
        self._keys: Any = None
        self._states: Any = None
        self.render_mode = None
        obs_space = spaces.Box(-np.inf, np.inf, (width,), np.float32)
        super().__init__(
            n_envs * self.n_agents, obs_space, spaces.Discrete(self.n_actions)
        )
        self.reset()  # seeded, like make_vec_env's venv.reset(seed=seed)

    # -- encoding ----------------------------------------------------------------------------
    def _encode(self, ob: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """``(copies, agents, obs_dim)`` + masks -> ``(copies, agents, width)`` inputs."""
        eye = np.broadcast_to(self._eye, ob.shape[:1] + self._eye.shape)
        return np.concatenate(
            [mask.astype(np.float32), ob.astype(np.float32), eye], axis=-1
        )

    def _dead_rows(self, x: np.ndarray, dead: np.ndarray) -> np.ndarray:
        x = x.copy()
        rows = np.broadcast_to(self._dead, x.shape).copy()
        rows[..., self.n_actions + self.obs_dim :] = self._eye
        x[dead] = rows[dead]
        return x

    # -- VecEnv API --------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        """Reset every copy. The first reset (done at construction) seeds copy ``b`` with
        ``seed + b``; later ones continue each copy's key chain, as ``make_vec_env``'s
        copies do after its seeded reset."""
        jax = self._jax
        if self._keys is None:
            seeds = np.arange(self.n_copies) + self._seed
            self._keys = jax.numpy.stack([jax.random.PRNGKey(int(s)) for s in seeds])
        self._keys, self._states, out = self._reset_all(self._keys)
        ob, mask = jax.device_get((out[0], out[1]))
        self._alive[:] = True
        self._obs = self._encode(ob, mask).reshape(self.num_envs, -1)
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._obs.copy()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions).reshape(-1).astype(np.int64)

    def step_wait(self):
        jax = self._jax
        acts = self._actions.reshape(self.n_copies, self.n_agents).astype(np.int32)
        acts = np.where(self._alive, acts, STOP_ACTION).astype(np.int32)
        self._keys, self._states, out, rout = self._step_all(
            self._keys, self._states, acts
        )
        ob, mask, _world, ally_alive, enemy_alive, done, _t, reward = jax.device_get(
            out
        )
        r_ob, r_mask = jax.device_get((rout[0], rout[1]))
        was_alive = self._alive
        x = self._encode(ob, mask)
        x = self._dead_rows(x, ~was_alive)  # dead before this step: the dead input
        rewards = np.where(was_alive, reward, 0.0).astype(np.float32).reshape(-1)
        dones = np.repeat(done, self.n_agents)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        self._alive = ally_alive.copy()
        if done.any():
            fresh = self._encode(r_ob, r_mask)
            for b in np.flatnonzero(done):
                decided = (not ally_alive[b].any()) or (not enemy_alive[b].any())
                won = bool((not enemy_alive[b].any()) and ally_alive[b].any())
                for i in range(self.n_agents):
                    info = infos[b * self.n_agents + i]
                    info["terminal_observation"] = x[b, i].copy()
                    info["battle_won"] = won
                    if not decided:
                        info["TimeLimit.truncated"] = True
                x[b] = fresh[b]
                self._alive[b] = True
        self._obs = x.reshape(self.num_envs, -1)
        return self._obs.copy(), rewards, dones, infos

    def action_masks(self) -> np.ndarray:
        return self._obs[:, : self.n_actions] > 0.5

    def close(self) -> None:
        self._states = None

    def seed(self, seed: int | None = None) -> list[int | None]:
        if seed is not None:  # takes effect at the next reset()
            self._seed, self._keys = int(seed), None
        return [None] * self.num_envs

    def has_attr(self, attr_name: str) -> bool:
        return attr_name == "action_masks" or hasattr(self, attr_name)

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        return [getattr(self, attr_name)] * len(self._indices(indices))

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any
    ):
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in self._indices(indices)]
        raise AttributeError(f"SMAXVecEnv has no per-env method {method_name!r}.")

    def env_is_wrapped(self, wrapper_class: Any, indices: Any = None) -> list[bool]:
        return [False] * len(self._indices(indices))

    def _indices(self, indices: Any) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)


def make_smax_vec_env(
    env_id: str,
    env_kwargs: Mapping[str, Any] | None = None,
    *,
    n_envs: int = 8,
    seed: int = 0,
) -> tuple[SMAXVecEnv, Any]:
    """Same contract as ``benchmarks.behaviour_policy.make_vec_env``: ``(venv, encoder)``."""
    venv = SMAXVecEnv(env_id, env_kwargs, n_envs=n_envs, seed=seed)
    return venv, venv.encoder


# ---------------------------------------------------------------------------------------
# Win rates and the build command
# ---------------------------------------------------------------------------------------


def win_rate(dataset: Any) -> float | None:
    """Fraction of episodes whose final step has ``battle_won`` (None if not recorded)."""
    import minari

    ds = minari.load_dataset(dataset) if isinstance(dataset, str) else dataset
    wins = []
    for ep in ds.iterate_episodes():
        if not ep.infos or "battle_won" not in ep.infos:
            return None
        wins.append(bool(np.asarray(ep.infos["battle_won"])[-1]))
    return float(np.mean(wins)) if wins else None


def _speed(env_id: str, n_envs: int, steps: int) -> None:
    """Agent-steps/s of the generic SuperSuit pipeline vs :class:`SMAXVecEnv`."""
    from benchmarks.behaviour_policy import make_vec_env

    for name, build in (
        ("SuperSuit + PettingZoo adapter", lambda: make_vec_env(env_id, n_envs=n_envs)),
        ("SMAXVecEnv (vmap)", lambda: make_smax_vec_env(env_id, n_envs=n_envs)),
    ):
        venv, _ = build()
        venv.reset()
        rng = np.random.default_rng(0)

        def random_legal(masks, rng=rng):
            return (rng.random(masks.shape) * masks).argmax(axis=1)

        for _ in range(3):  # compile
            venv.step(random_legal(np.stack(venv.env_method("action_masks"))))
        t0 = time.perf_counter()
        for _ in range(steps):
            venv.step(random_legal(np.stack(venv.env_method("action_masks"))))
        dt = time.perf_counter() - t0
        print(f"| {name} | {n_envs} | {steps * venv.num_envs / dt:,.0f} |")
        venv.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default=DEFAULT_SMAX_ENV)
    parser.add_argument(
        "--timesteps", type=int, default=1_000_000, help="PPO agent-steps"
    )
    parser.add_argument("--episodes", type=int, default=500, help="episodes per tier")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--speed", action="store_true", help="only compare training envs"
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    cmd = "python -m benchmarks.behaviour_smax " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    if args.speed:
        print("| training env | env copies | agent-steps/s |")
        print("| --- | ---: | ---: |")
        _speed(args.env, 8, 200)
        print(f"\ncommand: {cmd}")
        return 0

    from benchmarks.behaviour import build_datasets, format_summary, summarize
    from benchmarks.behaviour_config import DatasetConfig

    # SMAX's defaults (gamma 0.99, 16 vmapped copies): DatasetConfig.for_env
    config = DatasetConfig.for_env(
        args.env, episodes=args.episodes, ppo={"total_timesteps": args.timesteps}
    )
    start = time.perf_counter()
    datasets = build_datasets(
        args.env,
        config=config,
        seed=args.seed,
        show_progress=not args.no_progress,
        log=print,
    )
    wall = time.perf_counter() - start
    print(format_summary(summarize(datasets)))
    print()
    print("| tier | win rate |")
    print("| --- | ---: |")
    for tier, ds in datasets.items():
        wr = win_rate(ds)
        print(f"| {tier} | {'n/a' if wr is None else f'{100 * wr:.1f} %'} |")
    print(f"\nwall-clock {wall:.1f} s; command: {cmd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
