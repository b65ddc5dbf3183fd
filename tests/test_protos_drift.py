"""The committed generated code is exactly what the .proto files generate (make protos)."""

from pathlib import Path

from protos.generate import ROOT, generate


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    fresh = generate(tmp_path)
    assert fresh, "protoc generated nothing"
    committed_dir = ROOT / "protos" / "rarenet" / "v1"
    fresh_names = {p.name for p in fresh}
    committed_names = {p.name for p in committed_dir.glob("*_pb2*.py*")}
    assert fresh_names == committed_names, (
        "generated file set differs: run `make protos` and commit"
    )
    for path in fresh:
        assert path.read_bytes() == (committed_dir / path.name).read_bytes(), (
            f"{path.name} differs from what the .proto files generate: run `make protos` and commit"
        )
