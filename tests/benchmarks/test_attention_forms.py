"""``python -m benchmarks.attention_forms``: cross-agent attention's products, other forms."""

from __future__ import annotations

import json

import pytest

from benchmarks import attention_forms


def test_every_form_matches_the_layer_and_is_timed(tmp_path, capsys):
    out = tmp_path / "forms.json"
    rc = attention_forms.main([
        "--shapes", "[[2, 3, 4, 8], [2, 5, 2, 16]]", "--threads", "1", "--rounds", "2",
        "--calls", "1", "--out", str(out),
    ])
    assert rc == 0
    shapes = json.loads(out.read_text())["shapes"]
    assert list(shapes) == ["[2, 3, 4, 8]", "[2, 5, 2, 16]"]
    for row in shapes.values():
        assert list(row) == ["broadcast", "einsum", "bmm", "sdpa", "loop"]
        assert row["broadcast"]["ratio"] == 1.0
        assert all(len(v["rounds"]) == 2 for v in row.values())
    assert "| [2, 5, 2, 16] |" in capsys.readouterr().out


def test_a_form_that_computes_something_else_is_refused(monkeypatch):
    forms = attention_forms._forms()

    def wrong(qq, kk, vv, scale):  # attends with the keys' values swapped for the queries'
        return forms["broadcast"](qq, kk, qq, scale)

    monkeypatch.setattr(attention_forms, "_forms", lambda: {**forms, "wrong": wrong})
    with pytest.raises(AssertionError, match="'wrong' differs"):
        attention_forms.time_shape([2, 3, 4, 8], rounds=1, calls=1)


@pytest.mark.parametrize("shapes", ["[[2, 3, 4]]", "[]", "{}", "[[2, 3, 4, 6]]", "nope"])
def test_refuses_bad_shapes(shapes):
    with pytest.raises(SystemExit, match="--shapes"):
        attention_forms.main(["--shapes", shapes])
