"""The harness's plug-in interface: algorithms and dataset transforms, registered by name.

An **algorithm** turns a training context (a Minari dataset, a seed, its options) into a
policy with ``act(obs_dict) -> action_dict`` and ``reset()``:

>>> @register_algorithm("my_algo", config_cls=MyConfig)
... def train_my_algo(ctx: TrainContext) -> Policy:
...     batch = ctx.batch()                     # wrappers.EpisodeBatch of the dataset
...     ...
...     return MyPolicy(...)

A **transform** turns a source dataset into a new Minari dataset before any learner trains
on it (``"bc+eaq"`` is BC trained on ``eaq``'s output):

>>> @register_transform("my_transform", config_cls=MyTransformConfig)
... def apply(ctx: TransformContext) -> minari.MinariDataset: ...

Modules are imported lazily: the registry holds ``"module:function"`` strings, so a missing
optional dependency (MADiff, EAQ, jax) only matters for the runs that use it, and validation
reports it before any run starts.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Policy(Protocol):
    """What an algorithm returns: acts for the agents present, ``reset()`` between episodes."""

    def act(self, obs: dict[str, Any]) -> dict[str, Any]: ...

    def reset(self) -> None: ...


@dataclasses.dataclass
class TrainContext:
    """Everything an algorithm may use to train one run.

    Attributes:
        dataset_id: the Minari dataset to train on (already transformed, if the run has a
            transform).
        source_dataset_id: the dataset named in the config (before any transform).
        env_id, env_kwargs: the evaluation env (``wrappers.make_env`` id and kwargs).
        seed: the run's seed; everything random in training must derive from it.
        config: the algorithm's options, an instance of its ``config_cls``.
        show_progress: draw tqdm bars.
    """

    dataset_id: str
    source_dataset_id: str
    env_id: str
    env_kwargs: dict[str, Any]
    seed: int
    config: Any
    show_progress: bool = False
    _batch: Any = dataclasses.field(default=None, repr=False)

    def dataset(self):
        """The training dataset as a ``minari.MinariDataset``."""
        import minari

        return minari.load_dataset(self.dataset_id)

    def batch(self):
        """The training dataset as a ``wrappers.EpisodeBatch`` (loaded once)."""
        if self._batch is None:
            from wrappers import load_episodes

            self._batch = load_episodes(self.dataset_id)
        return self._batch

    def make_env(self):
        """A fresh PettingZoo ``ParallelEnv`` of the evaluation env."""
        from wrappers import make_env

        return make_env(self.env_id, **self.env_kwargs)


@dataclasses.dataclass
class TransformContext:
    """Inputs of a dataset transform: write ``output_id`` from ``source_id``, never touch it."""

    source_id: str
    output_id: str
    seed: int
    config: Any
    show_progress: bool = False


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """An algorithm without options."""


@dataclasses.dataclass(frozen=True)
class PluginSpec:
    """A registered algorithm or transform.

    Attributes:
        name: the name used in configs.
        target: ``"module:function"``; the function takes a context and returns a policy
            (algorithms) or a ``minari.MinariDataset`` (transforms).
        config_cls: dataclass of the options (TOML ``[algorithm_options.<name>]``).
        requires: ``"module"`` or ``"module:attribute"`` that must import for the plug-in
            to work (checked at validation, before any run starts).
        uses_dataset: False for algorithms that ignore the data (random), which therefore
            cannot be combined with a transform.
        discrete_only: the algorithm needs Discrete action spaces.
        description: one line for ``--list``.
    """

    name: str
    target: str
    config_cls: type = NoOptions
    requires: tuple[str, ...] = ()
    uses_dataset: bool = True
    discrete_only: bool = False
    description: str = ""

    def load(self) -> Callable[[Any], Any]:
        module_name, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def missing_requirement(self) -> str | None:
        """None when usable, else the reason (e.g. ``"No module named 'jax'"``)."""
        for req in (*self.requires, self.target.partition(":")[0]):
            mod, _, attr = req.partition(":")
            try:
                module = importlib.import_module(mod)
            except Exception as exc:  # ImportError, or an error raised by the module itself
                return f"{mod}: {type(exc).__name__}: {exc}"
            if attr and not hasattr(module, attr):
                return f"{mod} has no {attr!r} (not implemented yet?)"
        try:
            self.load()
        except AttributeError as exc:
            return str(exc)
        return None

    def make_config(self, options: dict[str, Any] | None) -> Any:
        """Build ``config_cls(**options)``; ValueError naming unknown or bad options."""
        options = dict(options or {})
        fields = {f.name for f in dataclasses.fields(self.config_cls)}
        unknown = sorted(set(options) - fields)
        if unknown:
            raise ValueError(
                f"unknown option(s) {unknown} for {self.name!r}; allowed: {sorted(fields)}"
            )
        try:
            return self.config_cls(**options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad options for {self.name!r}: {exc}") from None


ALGORITHMS: dict[str, PluginSpec] = {}
TRANSFORMS: dict[str, PluginSpec] = {}


def register_algorithm(spec: PluginSpec) -> PluginSpec:
    """Add (or replace) an algorithm; returns the spec."""
    if "+" in spec.name or not spec.name:
        raise ValueError(f"Bad algorithm name {spec.name!r}: '+' separates a transform.")
    ALGORITHMS[spec.name] = spec
    return spec


def register_transform(spec: PluginSpec) -> PluginSpec:
    """Add (or replace) a dataset transform; returns the spec."""
    if "+" in spec.name or not spec.name or spec.name == "none":
        raise ValueError(f"Bad transform name {spec.name!r}.")
    TRANSFORMS[spec.name] = spec
    return spec


_ALIASES: dict[str, str] = {}


def register_alias(alias: str, base: str) -> PluginSpec:
    """Register the algorithm or transform ``base`` a second time, as ``alias``.

    The alias is a separate entry: its own ``[algorithm_options.<alias>]`` /
    ``[transform_options.<alias>]``, its own leaderboard rows and (for a transform) its own
    output dataset, e.g. EAQ at a second lambda beside the default one. Registering the same
    alias for the same base again is a no-op; anything else that clashes is a ValueError.
    """
    if not isinstance(alias, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", alias):
        raise ValueError(
            f"alias {alias!r} must be lowercase letters, digits and '_' (starting with a "
            "letter)"
        )
    if _ALIASES.get(alias) == base:
        return ALGORITHMS.get(alias) or TRANSFORMS[alias]
    if alias in ALGORITHMS or alias in TRANSFORMS:
        raise ValueError(f"{alias!r} is already a registered name")
    for registry, register in ((ALGORITHMS, register_algorithm), (TRANSFORMS, register_transform)):
        if base in registry and base not in _ALIASES:
            spec = registry[base]
            _ALIASES[alias] = base
            return register(dataclasses.replace(
                spec, name=alias, description=f"{spec.description} (alias of {base!r})"
            ))
    known = sorted(n for n in (*ALGORITHMS, *TRANSFORMS) if n not in _ALIASES)
    raise ValueError(f"{base!r} is not a registered algorithm or transform; known: {known}")


def parse_entry(entry: str) -> tuple[str, str | None]:
    """``"bc+eaq"`` -> ``("bc", "eaq")``; ``"bc"`` -> ``("bc", None)``."""
    name, sep, transform = entry.partition("+")
    return name.strip(), (transform.strip() if sep else None)


def _builtin() -> None:
    from benchmarks.algorithms.options import (
        BCConfig,
        EAQTransformConfig,
        IQLCQLConfig,
        MADiffAdapterConfig,
        SampledBCConfig,
    )

    register_algorithm(PluginSpec(
        name="random", target="benchmarks.algorithms.simple:train_random",
        uses_dataset=False, description="uniform random legal actions",
    ))
    register_algorithm(PluginSpec(
        name="behaviour", target="benchmarks.algorithms.simple:train_behaviour",
        uses_dataset=False,
        description="the dataset's own behaviour policy, reloaded from its metadata",
    ))
    register_algorithm(PluginSpec(
        name="bc", target="benchmarks.algorithms.bc:train_bc", config_cls=BCConfig,
        requires=("torch",),
        description="behaviour cloning, parameter-shared MLP with agent id",
    ))
    register_algorithm(PluginSpec(
        name="bc_sampled", target="benchmarks.algorithms.bc:train_bc",
        config_cls=SampledBCConfig, requires=("torch",),
        description="behaviour cloning that samples its discrete actions (no arg-max)",
    ))
    register_algorithm(PluginSpec(
        name="iql_cql", target="benchmarks.algorithms.iql_cql:train_iql_cql",
        config_cls=IQLCQLConfig, requires=("torch",), discrete_only=True,
        description="independent Q-learning + CQL (OG-MARL style), shared Q-net",
    ))
    for name, mode in (
        ("madiff_d", "decentralized"),
        ("madiff_c", "centralized"),
        ("independent_diffuser", "independent"),
    ):
        register_algorithm(PluginSpec(
            name=name, target=f"benchmarks.algorithms.madiff:train_{name}",
            config_cls=MADiffAdapterConfig, requires=("diffusion_agents.madiff:MADiffPolicy",),
            description=f"MADiff ({mode})",
        ))
    register_transform(PluginSpec(
        name="eaq", target="benchmarks.algorithms.transforms:apply_eaq",
        config_cls=EAQTransformConfig, requires=("diffusion_agents.eaq:augment",),
        description="EAQ augmentation (Q-total guided episode diffusion)",
    ))
    register_transform(PluginSpec(
        name="eaq_noq", target="benchmarks.algorithms.transforms:apply_eaq_noq",
        config_cls=EAQTransformConfig, requires=("diffusion_agents.eaq:augment",),
        description="EAQ augmentation without Q-total guidance",
    ))


_builtin()

__all__ = [
    "ALGORITHMS",
    "TRANSFORMS",
    "NoOptions",
    "PluginSpec",
    "Policy",
    "TrainContext",
    "TransformContext",
    "parse_entry",
    "register_algorithm",
    "register_alias",
    "register_transform",
]
