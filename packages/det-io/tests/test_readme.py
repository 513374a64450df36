import contextlib
import io
import os
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs_refuses_and_prints_what_it_says():
    (code,) = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {})
    refused = "posix.system" if os.name == "posix" else "nt.system"
    assert out.getvalue().splitlines() == ["[(3, 5), (2, 5)]", refused]
