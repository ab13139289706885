"""Generate Python stubs and a descriptor image from protos/ (run by `make proto`).

Outputs (all generated, never edited, not committed):
  shared/gen/                 *_pb2.py, *_pb2.pyi, *_pb2_grpc.py for crm/** and buf/validate
  build/crm.binpb             FileDescriptorSet of every crm/** file with imports and
                              source info: Envoy's grpc_json_transcoder and `buf lint` read it.

There is no network and no remote buf dependency: buf/validate/validate.proto is
taken from the installed protovalidate wheel (it embeds the serialized
FileDescriptorProto), so the constraints we compile against are exactly the ones
the validator enforces at run time.
"""

from __future__ import annotations

import ast
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
GEN = ROOT / "shared" / "gen"
BUILD = ROOT / "build"
DEPS_IMAGE = BUILD / "deps.binpb"
IMAGE = BUILD / "crm.binpb"


def _validate_descriptor_bytes() -> bytes:
    from protovalidate._gen.buf.validate import validate_pb

    source = Path(validate_pb.__file__).read_text()
    match = re.search(r"_DESC = file_desc\(\s*(b'.*?'),\s*\[", source, re.S)
    if not match:
        raise SystemExit(f"cannot find the validate.proto descriptor in {validate_pb.__file__}")
    return ast.literal_eval(match.group(1))


def write_deps_image() -> None:
    from google.protobuf import descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2

    files = descriptor_pb2.FileDescriptorSet()
    for module in (descriptor_pb2, duration_pb2, field_mask_pb2, timestamp_pb2):
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        files.file.append(proto)
    files.file.append(descriptor_pb2.FileDescriptorProto.FromString(_validate_descriptor_bytes()))
    DEPS_IMAGE.write_bytes(files.SerializeToString())


def _protoc(*args: str) -> None:
    import grpc_tools
    from grpc_tools import protoc

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    site_packages = Path(grpc_tools.__file__).parent.parent  # googleapis-common-protos' google/api/*.proto
    argv = [
        "protoc",
        f"--descriptor_set_in={DEPS_IMAGE}",
        f"-I{PROTOS}",
        f"-I{site_packages}",
        f"-I{well_known}",
        *args,
    ]
    if protoc.main(argv) != 0:
        raise SystemExit("protoc failed: " + " ".join(argv))


def main() -> None:
    crm_files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.glob("crm/**/*.proto"))
    if not crm_files:
        raise SystemExit("no .proto files under protos/crm")
    BUILD.mkdir(exist_ok=True)
    write_deps_image()
    staging = GEN.with_name("gen.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _protoc(
        f"--python_out={staging}",
        f"--pyi_out={staging}",
        f"--grpc_python_out={staging}",
        "buf/validate/validate.proto",
        *crm_files,
    )
    _protoc("--include_imports", "--include_source_info", f"--descriptor_set_out={IMAGE}", *crm_files)
    # Every generated directory is a regular package, so `crm.customer.v1` imports without
    # relying on namespace-package lookups across sys.path.
    for directory in [staging, *[p for p in staging.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    (staging / "__init__.py").unlink()  # shared/gen itself is a path entry, not a package
    shutil.rmtree(GEN, ignore_errors=True)
    staging.rename(GEN)
    print(f"generated {len(crm_files)} crm protos into {GEN.relative_to(ROOT)} and {IMAGE.relative_to(ROOT)}")


if __name__ == "__main__":
    sys.exit(main())
