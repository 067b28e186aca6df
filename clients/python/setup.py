"""Generates the tessera.v1 gRPC stubs from ../../proto when the package is built, so that they
always match the server they were built beside. protoc and grpc_python_plugin come from Debian's
protobuf-compiler-grpc (grpcio-tools from an index is used instead where it is installed)."""

import glob
import os
import shutil
import subprocess

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
# The checkout's proto/, or TESSERA_PROTO_DIR (a copy of this directory built elsewhere).
PROTO_DIR = os.environ.get("TESSERA_PROTO_DIR") or os.path.normpath(os.path.join(HERE, "..", "..", "proto"))


def generate(out_dir):
    protos = sorted(glob.glob(os.path.join(PROTO_DIR, "tessera", "v1", "*.proto")))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_DIR}: build the client from a Tessera checkout")
    protoc, plugin = shutil.which("protoc"), shutil.which("grpc_python_plugin") or "/usr/bin/grpc_python_plugin"
    if protoc and os.access(plugin, os.X_OK):
        cmd = [protoc, f"--plugin=protoc-gen-grpc_python={plugin}"]
    else:
        try:
            import grpc_tools  # noqa: F401
        except ImportError:
            raise SystemExit("protoc and grpc_python_plugin (Debian: protobuf-compiler-grpc) or grpcio-tools are needed")
        cmd = ["python3", "-m", "grpc_tools.protoc"]
    cmd += [f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", "-I", PROTO_DIR] + protos
    subprocess.run(cmd, check=True)
    for package in ("tessera", os.path.join("tessera", "v1")):
        open(os.path.join(out_dir, package, "__init__.py"), "a").close()


class BuildWithStubs(build_py):
    def run(self):
        super().run()
        generate(self.build_lib)


setup(cmdclass={"build_py": BuildWithStubs})
