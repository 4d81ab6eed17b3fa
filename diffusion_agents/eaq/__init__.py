"""EAQ (Oh et al., arXiv 2408.13092): Q-total-guided episode augmentation for offline MARL.

``augment(dataset, ...)`` returns a new Minari dataset holding the real episodes plus
synthetic ones drawn from a Conv1D episode diffusion model trained with a Q-total loss;
:class:`EAQAugmenter` is the reusable fit-once / sample-many object; :class:`EAQConfig`
holds every setting (``q_weight=0`` is "EAQ without Q"). See ``docs/eaq.md``.
"""

from diffusion_agents.eaq.augment import (
    EAQAugmenter,
    SampleResult,
    augment,
    default_dataset_id,
)
from diffusion_agents.eaq.config import EAQConfig
from diffusion_agents.eaq.encode import DecodeResult, EpisodeLayout, RowNormalizer

__all__ = [
    "DecodeResult",
    "EAQAugmenter",
    "EAQConfig",
    "EpisodeLayout",
    "RowNormalizer",
    "SampleResult",
    "augment",
    "default_dataset_id",
]
