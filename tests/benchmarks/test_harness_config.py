"""Bad configs fail before any run starts, naming the offending entry."""

from __future__ import annotations

import argparse

import pytest

from benchmarks import harness
from benchmarks.config import ConfigError, load_config, parse_config
from tests.benchmarks import harness_helpers as hh


@pytest.fixture
def dataset():
    hh.make_dataset()


def test_valid_grid_expands_to_runs(dataset):
    cfg = parse_config(hh.grid_toml(["random", "bc", "sleepy"], seeds=[0, 1, 2]))
    runs = cfg.runs()
    assert len(runs) == 9
    assert {r.entry for r in runs} == {"random", "bc", "sleepy"}
    assert len({r.key for r in runs}) == 9
    # changing an option changes the key of that algorithm's runs only
    other = parse_config(hh.grid_toml(["random", "bc"], seeds=[0]).replace("steps = 20", "steps = 21"))
    keys = {r.entry: r.key for r in other.runs()}
    base = {r.entry: r.key for r in cfg.runs() if r.seed == 0}
    assert keys["random"] == base["random"] and keys["bc"] != base["bc"]


def test_task_options_override_the_top_level_ones_per_key(dataset):
    text = hh.grid_toml(["random", "bc", "bc+eaq"], seeds=[0], extra=hh.EAQ_TINY)
    text = text.replace(
        'datasets = ["mpe2/simple_spread/tiny-v0"]',
        'datasets = ["mpe2/simple_spread/tiny-v0"]\n'
        'algorithm_options = { bc = { steps = 7 } }\n'
        'transform_options = { eaq = { augment = { num_episodes = 3 } } }',
    )
    cfg = parse_config(text)
    runs = {r.entry: r for r in cfg.runs()}
    top = parse_config(hh.grid_toml(["random", "bc", "bc+eaq"], seeds=[0], extra=hh.EAQ_TINY))
    top_runs = {r.entry: r for r in top.runs()}
    assert runs["bc"].algorithm_options == {**top_runs["bc"].algorithm_options, "steps": 7}
    assert runs["bc+eaq"].algorithm_options["steps"] == 7
    eaq = runs["bc+eaq"].transform_options
    assert eaq["augment"] == {"num_episodes": 3}
    assert eaq["config"] == top_runs["bc+eaq"].transform_options["config"]
    assert cfg.transforms_needed() == [("mpe2/simple_spread/tiny-v0", "eaq", eaq)]
    assert runs["random"].key == top_runs["random"].key and runs["bc"].key != top_runs["bc"].key


def test_alias_runs_a_plugin_under_a_second_name_with_its_own_options(dataset):
    from benchmarks.harness import transformed_id

    text = hh.grid_toml(["bc", "bc+eaq", "bc+eaq_small_q", "bc_long"], seeds=[0], extra=hh.EAQ_TINY)
    text += (
        '\n[aliases]\neaq_small_q = "eaq"\nbc_long = "bc"\n'
        "\n[transform_options.eaq_small_q]\n"
        + hh.EAQ_TINY.split("[transform_options.eaq]\n")[1].replace(
            "n_steps = 5,", "n_steps = 5, q_weight = 0.03,"
        )
        + "\n[algorithm_options.bc_long]\nsteps = 40\n"
    )
    runs = {r.entry: r for r in parse_config(text).runs()}
    assert runs["bc_long"].algorithm_options == {"steps": 40}
    assert runs["bc_long"].key != runs["bc"].key
    assert runs["bc+eaq_small_q"].transform_options["config"]["q_weight"] == 0.03
    assert "q_weight" not in runs["bc+eaq"].transform_options["config"]
    needed = parse_config(text).transforms_needed()
    assert [t for _, t, _ in needed] == ["eaq", "eaq_small_q"]
    # one output dataset per name
    assert transformed_id(hh.DATASET, "eaq_small_q") == "mpe2/simple_spread/tiny-eaq-small-q-v0"
    # parsing again (same alias, same base) is fine; a clash is refused
    parse_config(text)
    with pytest.raises(ConfigError, match=r"\[aliases\] eaq_small_q: 'eaq_small_q' is already"):
        parse_config(text.replace('eaq_small_q = "eaq"', 'eaq_small_q = "bc"'))
    for alias, base, msg in (
        ("bc", "iql_cql", "'bc' is already a registered name"),
        ("new_name", "nope", "'nope' is not a registered algorithm or transform"),
        ("Bad-Name", "bc", "must be lowercase letters"),
    ):
        with pytest.raises(ConfigError, match=msg):
            parse_config(hh.grid_toml(["bc"]) + f'\n[aliases]\n"{alias}" = "{base}"\n')


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda t: t.replace('name = "tiny"', 'name = "tiny'), "malformed TOML"),
        (lambda t: t.replace("mpe2/simple_spread_v3", "mpe2/no_such_env_v0"),
         "tasks[0].env 'mpe2/no_such_env_v0'"),
        (lambda t: t.replace('"random", "bc"', '"random", "nope"'),
         "tasks[0].algorithms[1] 'nope': unknown algorithm 'nope'"),
        (lambda t: t.replace('"bc"]', '"bc+nope"]'),
         "tasks[0].algorithms[1] 'bc+nope': unknown transform 'nope'"),
        (lambda t: t.replace('"random", "bc"', '"random+eaq", "bc"'),
         "tasks[0].algorithms[0] 'random+eaq'"),
        (lambda t: t.replace("tiny-v0", "missing-v0"),
         "tasks[0].datasets[0] 'mpe2/simple_spread/missing-v0': no such local dataset"),
        (lambda t: t.replace("tiny-v0", "bad id"), "tasks[0].datasets[0] 'mpe2/simple_spread/bad id'"),
        (lambda t: t.replace('datasets = ["mpe2/simple_spread/tiny-v0"]', 'tiers = ["nope"]'),
         "tasks[0].tiers ['nope']"),
        (lambda t: t.replace('datasets = ["mpe2/simple_spread/tiny-v0"]', 'tiers = ["medium"]'),
         "tasks[0].datasets[0] 'mpe2/simple_spread-N2-max_cycles5/medium-v0': no such local"),
        (lambda t: t + "\n[datasets]\nbuild_missing = true\noptions = { episodez = 3 }\n",
         "[datasets] options {'episodez': 3}"),
        (lambda t: t.replace("steps = 20\nbatch_size = 32\nhidden = 16\n\n[algorithm_options.iql",
                             "stepz = 20\n\n[algorithm_options.iql"),
         "[algorithm_options.bc]: unknown option(s) ['stepz']"),
        (lambda t: t.replace("[algorithm_options.bc]", "[algorithm_options.nope]"),
         "[algorithm_options.nope]: unknown algorithm 'nope'"),
        (lambda t: t.replace("seeds = [0, 1]", "seeds = [0, 0]"), "seeds = [0, 0]"),
        (lambda t: t.replace("eval_episodes = 2", "eval_episodez = 2"), "unknown key(s) ['eval_episodez']"),
        (lambda t: t.replace("max_cycles = 5 }", "max_cycles = 5, continuous_actions = true }")
         .replace('"random", "bc"', '"random", "iql_cql"'),
         "tasks[0].algorithms[1] 'iql_cql': 'iql_cql' needs Discrete actions"),
        (lambda t: t.replace('name = "tiny"', 'name = "tiny"').replace(
            'datasets = ["mpe2/simple_spread/tiny-v0"]',
            'datasets = ["mpe2/simple_spread/tiny-v0"]\nalgorithm_options = { bc = { stepz = 3 } }'),
         "tasks[0].algorithm_options.bc: unknown option(s) ['stepz']"),
        (lambda t: t.replace(
            'datasets = ["mpe2/simple_spread/tiny-v0"]',
            'datasets = ["mpe2/simple_spread/tiny-v0"]\ntransform_options = { nope = {} }'),
         "tasks[0].transform_options.nope: unknown transform 'nope'"),
    ],
)
def test_bad_config_names_the_entry(dataset, tmp_path, edit, expected, capsys):
    text = edit(hh.grid_toml(["random", "bc"]))
    with pytest.raises(ConfigError) as info:
        parse_config(text)
    assert expected in str(info.value)
    # through the CLI: exit code 2, the same message, and nothing was run or written
    path = tmp_path / "bad.toml"
    path.write_text(text)
    parser = argparse.ArgumentParser()
    harness.add_arguments(parser)
    out = tmp_path / "out"
    assert harness.run(parser.parse_args([str(path), "--out", str(out), "--quiet"])) == 2
    assert expected in capsys.readouterr().err
    assert not out.exists()


def test_unavailable_plugin_is_refused_before_running(dataset):
    from benchmarks.algorithms import ALGORITHMS, PluginSpec, register_algorithm

    register_algorithm(PluginSpec(name="needs_missing", target="no_such_pkg.mod:train"))
    try:
        with pytest.raises(ConfigError, match=r"'needs_missing' is not available \(no_such_pkg"):
            parse_config(hh.grid_toml(["random", "needs_missing"]))
    finally:
        ALGORITHMS.pop("needs_missing")


def test_builtin_configs_parse():
    quick = load_config("quick", check_datasets=False)
    assert {r.dataset for r in quick.runs()} == {"mpe2/simple_spread/medium-v0"}
    assert quick.eval_episodes >= 20 and len(quick.seeds) >= 3
    full = load_config("full", check_datasets=False, check_envs=False)  # SMAX env: slow
    assert {t.env for t in full.tasks} == {"mpe2/simple_spread_v3", "smax/smacv2_5_units"}
    assert len({r.dataset for r in full.runs()}) >= 5


def test_missing_config_file():
    with pytest.raises(ConfigError, match="No config file"):
        load_config("/nonexistent/grid.toml")


def test_existing_transform_output_is_reused_only_with_the_same_stamp(dataset):
    """A transform's output is rebuilt never; it is reused only when the harness built it
    with the same options. A dataset of that id made outside the harness (no stamp) or
    with other options is refused by name, and nothing is written."""
    import json

    from benchmarks.harness import _dataset_path, ensure_transform, transformed_id

    opts = {"config": {"n_steps": 1}}
    out_id = transformed_id(hh.DATASET, "eaq")
    hh.make_dataset(out_id, episodes=2)  # same id, made by hand
    stamp = _dataset_path(out_id) / "harness_transform.json"
    with pytest.raises(ValueError, match="not built by the harness"):
        ensure_transform(hh.DATASET, "eaq", opts, show_progress=False)
    assert not stamp.exists()
    stamp.write_text(json.dumps({"transform": "eaq", "source": hh.DATASET, "options": opts}))
    assert ensure_transform(hh.DATASET, "eaq", opts, show_progress=False) == out_id
    with pytest.raises(ValueError, match="was built with"):
        ensure_transform(hh.DATASET, "eaq", {"config": {"n_steps": 2}}, show_progress=False)
