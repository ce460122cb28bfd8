"""tools/results_table.py: the README's Results rows come from the committed files, number for number."""
import json
from pathlib import Path

import pytest
from load_by_path import load_module

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    return load_module("tools/results_table.py", "results_table")


def _run_folder(path, *, ways=5, shots=1, kind="omniglot", seconds=4000.0):
    path.mkdir()
    (path / "config.json").write_text(json.dumps({"data": {"kind": kind}, "model": {"ways": ways}}))
    (path / "log.jsonl").write_text(json.dumps({"iteration": 0, "seconds": 1.0}) + "\n"
                                    + json.dumps({"iteration": 700, "seconds": seconds}) + "\n")
    recs = [{"accuracy": acc, "ci95": 0.0031, "tasks": 300, "mode": mode, "seconds": 95.0, "shots": shots,
             "iteration": 700} for mode, acc in (("transductive", 0.87654), ("per-query", 0.81234))]
    (path / f"eval-{shots}shot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))


def test_row_reads_every_number_from_the_files(tmp_path):
    _run_folder(tmp_path / "r1", ways=20, shots=5)
    (row,) = _tool().rows(tmp_path / "r1")
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["Omniglot 20-way 5-shot", "700 (200,000)", "87.65 ± 0.31%", "81.23 ± 0.31%", "300",
                     "1 h 06 min", "1 min 35 s", "96.65% / 97.12%", "`r1`"]


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    _run_folder(tmp_path / "r1")
    (tmp_path / "r1" / "log.jsonl").unlink()
    assert _tool().main([str(tmp_path)]) == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.startswith("results_table: error: ") and "log.jsonl" in out.err


@pytest.mark.skipif(not (ROOT / "docs" / "results").is_dir(), reason="no docs/results in this checkout")
def test_committed_results_all_appear(capsys):
    assert _tool().main([str(ROOT / "docs" / "results")]) == 0
    table = capsys.readouterr().out
    evals = sorted((ROOT / "docs" / "results").glob("*/eval-*.jsonl"))
    assert evals
    for path in evals:
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            assert f"{100 * rec['accuracy']:.2f} ± {100 * rec['ci95']:.2f}%" in table, (path, rec["mode"])


@pytest.mark.skipif(not (ROOT / "docs" / "results").is_dir(), reason="no docs/results in this checkout")
def test_readme_table_is_the_tools_output(capsys):
    """The README's Results table is exactly what the command it names prints: no row typed or left stale."""
    readme = (ROOT / "README.md").read_text()
    marker = "`python tools/results_table.py docs/results --runs "
    assert marker in readme
    runs = readme[readme.index(marker) + len(marker):].split("`", 1)[0].split()
    assert runs
    assert _tool().main([str(ROOT / "docs" / "results"), "--runs", *runs]) == 0
    table = capsys.readouterr().out.strip()
    assert table in readme
