"""A diagnostic copy of an EAQ-augmented dataset whose synthetic episodes' rewards are scaled.

    python -m benchmarks.eaq_reward_scale AUGMENTED_ID --factor 0.5 [--new-id ID]

Writes a new dataset (default id: ``<name>-rs<factor>-vN``, e.g. ``poor-eaqsla03d128s1-rs05-v0``)
with every episode of the augmented dataset; in the synthetic ones (``infos["synthetic"]``) the
team reward and each agent's reward are multiplied by ``--factor``. Observations, actions and
the real episodes are untouched; the source is never modified (:func:`wrappers.write_dataset`,
atomic). The metadata keeps the augmentation's ``"multiagent"`` block, so the leaderboard
still pairs the copy with the augmentation's source, records the factor in its ``"eaq"`` entry
(``reward_scale``: the leaderboard then does not pool the copy with the augmentation as a
replicate) and adds ``"reward_scale": {"source_dataset_id", "factor"}``. It asks one
question: does the level of the synthetic rewards, with everything else fixed, decide what
a downstream learner gains (docs/eaq.md, "Guidance through the actions on SMAX")? Not a
transform to use for training.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

import numpy as np

from benchmarks.cli import script_main


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", help="an EAQ-augmented dataset id")
    p.add_argument("--factor", type=float, required=True, help="multiplies the synthetic rewards")
    p.add_argument("--new-id", default=None, help="the new dataset's id")


def scaled_buffers(dataset: Any, factor: float) -> tuple[list[Any], int]:
    """The dataset's episodes as buffers, synthetic rewards × ``factor``; with the count of
    synthetic episodes."""
    from wrappers.minari_io import episode_buffers

    out, synthetic = [], 0
    for buf in episode_buffers(dataset):
        if np.asarray(buf.infos.get("synthetic", False)).any():
            synthetic += 1
            infos = dict(buf.infos)
            infos["rewards"] = {a: np.asarray(r) * factor for a, r in buf.infos["rewards"].items()}
            buf = dataclasses.replace(buf, rewards=np.asarray(buf.rewards) * factor, infos=infos)
        out.append(buf)
    return out, synthetic


def run(args: argparse.Namespace) -> int:
    import minari

    from wrappers import write_dataset
    from wrappers.minari_io import derived_dataset_id, derived_metadata

    ds = minari.load_dataset(args.dataset)
    src = ds.spec.dataset_id
    tag = f"{args.factor:g}".replace(".", "")
    new_id = args.new_id or derived_dataset_id(src, f"-rs{tag}")
    buffers, synthetic = scaled_buffers(ds, args.factor)
    if synthetic == 0:
        raise ValueError(f"{src}: no synthetic episodes (not an EAQ augmentation?)")
    metadata = derived_metadata(
        ds.storage.metadata, "reward_scale", {"source_dataset_id": src, "factor": args.factor},
        f"{src} with the rewards of its {synthetic} synthetic episodes multiplied by {args.factor:g}.",
    )
    eaq = metadata.get("multiagent", {}).get("eaq")
    if eaq is not None:  # another transform than the augmentation's: not one of its replicates
        eaq["reward_scale"] = args.factor * float(eaq.get("reward_scale") or 1.0)
    write_dataset(
        new_id, buffers, observation_space=ds.observation_space, action_space=ds.action_space,
        metadata=metadata, env_spec=ds.env_spec, num_episodes=len(buffers), show_progress=False,
    )
    print(f"wrote {new_id}: {len(buffers)} episodes, {synthetic} synthetic with rewards × {args.factor:g}")
    return 0


def main(argv: list[str] | None = None) -> int:
    return script_main("benchmarks.eaq_reward_scale", __doc__, add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
