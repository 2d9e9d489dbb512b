"""Every table in a study's README is what the study's own command renders from
its committed results, byte for byte (so none is typed by hand)."""

import pathlib
import shutil
import subprocess
import sys

import pytest

from studies import readme_tables
from studies.data_size import run as data_size
from studies.dense import run as dense

ROOT = pathlib.Path(__file__).resolve().parent.parent
STUDIES = ROOT / "studies"
# (renders a results folder again, the folder, the README whose block it fills)
COMMITTED = [
    (data_size.report_again, "data_size/results", "data_size/README.md"),
    (dense.report_again, "dense/results/segmentation_pose", "dense/README.md"),
    (dense.report_again, "dense/results/detection", "dense/README.md"),
]


@pytest.mark.parametrize("render, results, readme", COMMITTED,
                         ids=[r for _, r, _ in COMMITTED])
def test_readme_tables_are_rendered_from_the_committed_results(render, results, readme,
                                                               tmp_path):
    copy = tmp_path / pathlib.Path(results).name
    shutil.copytree(STUDIES / results, copy)
    text = render(str(copy))
    assert text == (STUDIES / results / "results.md").read_text()
    body = readme_tables.block((STUDIES / readme).read_text(), copy.name)
    assert body.rstrip("\n") == text.rstrip("\n")
    assert "|---|" in body  # a table, not an empty block


def test_every_study_has_a_readme_and_a_command():
    folders = [p for p in STUDIES.iterdir() if p.is_dir() and not p.name.startswith("_")]
    assert {p.name for p in folders} >= {"data_size", "transfer", "dense"}
    for p in folders:
        assert (p / "README.md").exists() and (p / "run.py").exists(), p


def test_update_replaces_only_its_block(tmp_path):
    path = tmp_path / "README.md"
    path.write_text("a\n<!-- generated: x (cmd) -->\nold\n<!-- end generated: x -->\n"
                    "<!-- generated: y -->\nkeep\n<!-- end generated: y -->\nz\n")
    readme_tables.update(str(path), "x", "| new |")
    text = path.read_text()
    assert readme_tables.block(text, "x") == "| new |\n"
    assert readme_tables.block(text, "y") == "keep\n"
    assert text.startswith("a\n") and text.endswith("z\n")
    with pytest.raises(ValueError, match="no '<!-- generated: w -->'"):
        readme_tables.update(str(path), "w", "t")


def test_the_report_only_command_fills_the_readme(tmp_path):
    copy = tmp_path / "detection"
    shutil.copytree(STUDIES / "dense/results/detection", copy)
    readme = tmp_path / "README.md"
    readme.write_text("<!-- generated: detection -->\n<!-- end generated: detection -->\n")
    out = subprocess.run([sys.executable, "-m", "studies.dense.run", "--report_only",
                          f"--workdir={copy}", f"--readme={readme}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert readme_tables.block(readme.read_text(), "detection") == (copy / "results.md"
                                                                    ).read_text()
