"""The app's layering rules, checked on the source: torch only through mos_studio.core, widgets never import the
window, and importing the window does not load torch (startup stays fast)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.gui
APP = Path(__file__).resolve().parents[2] / "mos_studio" / "app"


def imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add(("." * node.level) + (node.module or ""))
    return names


def test_no_app_module_imports_torch():
    for path in APP.glob("*.py"):
        assert not any(n == "torch" or n.startswith("torch.") for n in imports(path)), path.name


def test_widgets_and_models_do_not_import_the_window():
    for name in ("canvas.py", "inspector.py", "document.py", "inference.py", "export.py", "opener.py", "brush.py",
                 "imaging.py"):
        assert not any(n.endswith("window") for n in imports(APP / name)), name


def test_importing_the_window_does_not_load_torch():
    code = ("import os, sys; os.environ['QT_QPA_PLATFORM'] = 'offscreen'; import mos_studio.app.window; "
            "import mos_studio.app.main; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
