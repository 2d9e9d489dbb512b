"""notebooks/analyze_checkpoint.ipynb runs end to end on the tiny pre-training run."""

import json
import os
import sys

import pytest

from tests.helpers import xla_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "analyze_checkpoint.ipynb")


def _kernel_manager(tmp_path):
    """A kernel of this interpreter, whatever kernelspecs the machine has: a
    user-level 'python3' could name another Python without this venv's packages."""
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager

    spec_dir = tmp_path / "kernels" / "bvl_python"
    spec_dir.mkdir(parents=True)
    # One CPU device, no fake ones; compiled like the tests' programs.
    env = {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": xla_flags(1), "TF_CPP_MIN_LOG_LEVEL": "2"}
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "bvl test", "language": "python", "env": env}))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")],
                              ensure_native_kernel=False)
    return KernelManager(kernel_name="bvl_python", kernel_spec_manager=specs)


def test_notebook_is_clean():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), \
        "commit the notebook without outputs (Clear All Outputs)"
    assert "BVL_NOTEBOOK_WORKDIR" in code[0].source and "BVL_NOTEBOOK_DATA_DIR" in code[0].source
    # A markdown line before every code cell.
    kinds = [c.cell_type for c in nb.cells]
    assert all(kinds[i - 1] == "markdown" for i, k in enumerate(kinds) if k == "code")


@pytest.mark.slow
def test_notebook_runs_on_tiny_run(pretrained_tiny, tiny_source, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    from tests.helpers import data_dir_of

    workdir, _ = pretrained_tiny
    # The kernel inherits the environment, plus the kernelspec's env.
    monkeypatch.setenv("BVL_NOTEBOOK_WORKDIR", workdir)
    monkeypatch.setenv("BVL_NOTEBOOK_DATA_DIR", data_dir_of(tiny_source))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    km = _kernel_manager(tmp_path)
    NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": ROOT}}).execute()

    code = [c for c in nb.cells if c.cell_type == "code"]
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                   for c in code for o in c.outputs)
    assert "checkpoints at steps [4, 8]" in text
    assert "restored step 8" in text
    assert "classes with < 100 training images:" in text
    figures = sum("image/png" in o.get("data", {}) for c in code for o in c.outputs)
    assert figures == 4, "curves, predictions, AP vs frequency and the projection"
