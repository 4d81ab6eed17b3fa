"""Diffusion models for offline multi-agent RL: MADiff policies and EAQ augmentation.

Imports point down: this package uses ``wrappers`` and never ``benchmarks``.
"""
