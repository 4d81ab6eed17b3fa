"""Leaderboard harness, behaviour-policy datasets, baselines, statistics and the CLI."""
