"""Regenerate the committed protobuf/gRPC Python code: `make protos` (python -m protos.generate).

The .proto files live in protos/rarenet/v1/ and are compiled with the repository root as the
include path, so generated modules import each other as `protos.rarenet.v1.x_pb2`.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "protos" / "rarenet" / "v1"


def proto_files() -> list[Path]:
    return sorted(PROTO_DIR.glob("*.proto"))


def generate(out_dir: Path) -> list[Path]:
    """Compile every .proto into out_dir (mirroring protos/rarenet/v1); returns the files written."""
    import grpc_tools
    from grpc_tools import protoc

    include = str(Path(grpc_tools.__file__).parent / "_proto")
    out_dir.mkdir(parents=True, exist_ok=True)
    args = [
        "protoc",
        f"-I{ROOT}",
        f"-I{include}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *[str(p.relative_to(ROOT)) for p in proto_files()],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    return sorted((out_dir / "protos" / "rarenet" / "v1").glob("*_pb2*.py*"))


def main() -> None:
    written = generate(ROOT)
    for path in written:
        print(path.relative_to(ROOT))


if __name__ == "__main__":
    main()
