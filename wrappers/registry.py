"""Environment ids → PettingZoo parallel envs.

Ids take one of these forms:

- ``"mpe2/<module>"``: any MPE2 module, e.g. ``"mpe2/simple_spread_v3"``; kwargs go to its
  ``parallel_env`` (``N=3``, ``continuous_actions=True``, ``max_cycles=25``, ...).
- ``"<prefix>/<scenario>"`` for a registered family (``"smax/..."``, ``"smacv2/..."``): the
  family's factory is imported lazily, so a missing optional backend only matters when used.
- ``"package.module:factory"``: any callable returning a PettingZoo ``ParallelEnv``.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pettingzoo.utils.env import ParallelEnv

# prefix -> "module:function" taking (scenario, **kwargs); imported on first use.
_FAMILIES: dict[str, str] = {
    "mpe2": "wrappers.registry:_make_mpe2",
    "smax": "wrappers.smax:make_smax_env",
    "smacv2": "wrappers.smacv2:make_smacv2_env",
}


def register_family(prefix: str, factory: str) -> None:
    """Route ids ``"<prefix>/<scenario>"`` to ``factory`` (``"module:function"``)."""
    if "/" in prefix or ":" in prefix or not prefix:
        raise ValueError(f"Bad family prefix {prefix!r}: use a plain name like 'smax'.")
    _FAMILIES[prefix] = factory


def families() -> list[str]:
    """Registered id prefixes."""
    return sorted(_FAMILIES)


def _load(target: str) -> Callable[..., Any]:
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ValueError(f"Bad factory {target!r}: expected 'package.module:factory'.")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ValueError(
            f"Cannot import module {module_name!r} for env factory {target!r}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(
            f"Module {module_name!r} has no attribute {attr!r} (env factory {target!r})."
        ) from None


def _check_kwargs(fn: Callable[..., Any], kwargs: dict[str, Any], what: str) -> None:
    """Raise a clear error for keyword arguments ``fn`` does not accept."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    allowed = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise TypeError(
            f"{what} got unknown keyword argument(s) {bad}; accepted: {sorted(allowed)}."
        )


def mpe2_modules() -> list[str]:
    """Names of every MPE2 environment module (``simple_spread_v3``, ...)."""
    from mpe2 import all_modules

    return sorted(name.split("/")[-1] for name in all_modules.mpe_environments)


def _make_mpe2(scenario: str, **kwargs: Any) -> ParallelEnv:
    known = mpe2_modules()
    if scenario not in known:
        # Checked against MPE2's own list: importing "mpe2.<name>" would also accept helper
        # modules, and a missing dependency inside a real module would read as "unknown".
        raise ValueError(f"Unknown MPE2 environment {scenario!r}. Known: {', '.join(known)}.")
    module = importlib.import_module(f"mpe2.{scenario}")
    # MPE2's parallel_env takes **kwargs and forwards them to raw_env: check against raw_env.
    _check_kwargs(getattr(module, "raw_env", module.parallel_env), kwargs, f"mpe2/{scenario}")
    return module.parallel_env(**kwargs)


def make_env(env_id: str, **kwargs: Any) -> ParallelEnv:
    """Build a PettingZoo ``ParallelEnv`` from an id (see the module docstring for forms).

    >>> env = make_env("mpe2/simple_spread_v3", N=3)
    """
    if not isinstance(env_id, str) or not env_id:
        raise TypeError(f"env_id must be a non-empty string, got {env_id!r}.")
    if ":" in env_id:
        factory = _load(env_id)
        _check_kwargs(factory, kwargs, env_id)
        env = factory(**kwargs)
    else:
        prefix, sep, scenario = env_id.partition("/")
        if not sep or not scenario or prefix not in _FAMILIES:
            raise ValueError(
                f"Unknown env id {env_id!r}: expected '<family>/<scenario>' with family in "
                f"{families()} (e.g. 'mpe2/simple_spread_v3'), or 'package.module:factory'."
            )
        factory = _load(_FAMILIES[prefix])
        env = factory(scenario, **kwargs)
    if not isinstance(env, ParallelEnv) and not (
        hasattr(env, "possible_agents") and hasattr(env, "step") and hasattr(env, "reset")
    ):
        raise TypeError(
            f"{env_id!r} returned {type(env).__name__}, not a PettingZoo ParallelEnv."
        )
    return env
