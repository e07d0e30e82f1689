"""Generate the Python code for proto/ into src/, or check that the committed code is current.

    python scripts/protos.py generate   # rewrite src/billing/v1
    python scripts/protos.py check      # exit 1 if regenerating would change anything

The generated modules are committed (so installing needs no protoc) and never edited by hand;
`check` is how the test command catches a proto edited without regenerating.
"""

from __future__ import annotations

import filecmp
import shutil
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
PACKAGE = Path("billing") / "v1"
# The mypy-protobuf plugins live beside this interpreter, which need not be on PATH.
_BIN = Path(sys.executable).parent


def _generate(out: Path) -> None:
    sources = sorted(str(p.relative_to(PROTO)) for p in (PROTO / PACKAGE).glob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={_BIN / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={_BIN / 'protoc-gen-mypy_grpc'}",
        f"--mypy_out=quiet:{out}",
        f"--mypy_grpc_out=quiet:{out}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out / PACKAGE / "__init__.py").write_text('"""Generated from proto/billing/v1; do not edit."""\n')


def generate() -> None:
    target = ROOT / "src" / PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(Path(tmp) / PACKAGE, target)


def check() -> int:
    target = ROOT / "src" / PACKAGE
    with tempfile.TemporaryDirectory() as tmp:
        _generate(Path(tmp))
        fresh = Path(tmp) / PACKAGE
        names = {p.name for p in fresh.iterdir()} | {
            p.name for p in target.iterdir() if p.is_file() and p.suffix in {".py", ".pyi"}
        }
        stale = [
            n
            for n in sorted(names)
            if not (target / n).exists()
            or not (fresh / n).exists()
            or not filecmp.cmp(target / n, fresh / n, shallow=False)
        ]
    if stale:
        print("generated code is stale; run `make protos`:", ", ".join(stale))
        return 1
    print("generated code is current")
    return 0


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "check"
    if command == "generate":
        generate()
    else:
        sys.exit(check())
