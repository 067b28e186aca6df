#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (tests/fuzz/corpus/<target>/). Run from anywhere; needs
protoc. The seeds are checked in; this script says how they were made and remakes them."""
import os
import pathlib
import shutil
import subprocess

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO = ROOT / "proto"


def encode(message, text):
    return subprocess.run(["protoc", f"-I{PROTO}", f"--encode=tessera.v1.{message}", "tessera/v1/jobs.proto",
                           "tessera/v1/workers.proto", "tessera/v1/billing.proto"],
                          input=text.encode(), capture_output=True, check=True, cwd=PROTO).stdout


def escaped(raw):
    # FuzzedDataProvider::ConsumeRandomLengthString reads "\\" as one backslash and ends at "\" + other.
    return raw.replace(b"\\", b"\\\\") + b"\\\n"


def write(target, name, data):
    d = HERE / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def main():
    shutil.rmtree(HERE / "corpus", ignore_errors=True)
    for example in sorted((ROOT / "examples").iterdir()):
        write("fuzz_job_spec", example.name, example.read_bytes())
    specs = {
        "flow.yaml": b"kind: sleep\ngpu_count: 1\ngpu_models: [CPU, H100]\nbid_utok_per_gpu_hour: 1\nmax_duration_ms: 1\nsleep: {duration_ms: 0}\n",
        "anchors.yaml": b"base: &b {duration_ms: 5}\nkind: sleep\nsleep: *b\ngpu_count: 2\nbid_utok_per_gpu_hour: 9\nmax_duration_ms: 9\n",
        "tags.yaml": b"kind: !!str sleep\ngpu_count: !!int 1\nbid_utok_per_gpu_hour: '5'\nmax_duration_ms: 0x10\nsleep: {}\n",
        "nested.json": b'{"kind":"train_mlp","gpu_count":64,"bid_utok_per_gpu_hour":"9223372036854775807","max_duration_ms":2592000000,'
                       b'"regions":["eu"],"min_compute_capability":"9.0","train_mlp":{"input_dim":4096,"precision":"bf16"}}',
        "multi.yaml": b"---\nkind: sleep\n...\n---\nkind: gemm_bench\n",
        "unicode.yaml": "kind: sleep\nregions: [\"\u00e9u-w\u00ebst\", \"\\u0000\"]\nsleep: {duration_ms: -1}\n".encode(),
    }
    for name, text in specs.items():
        write("fuzz_job_spec", name, text)

    spec = ('spec { kind: "train_mlp" gpu_count: 2 gpu_models: "H100" bid_utok_per_gpu_hour: 3000000 max_duration_ms: 600000 '
            'priority_class: PRIORITY_CLASS_SPOT regions: "eu-west" min_compute_capability: "8.0" '
            'train_mlp { seed: 7 input_dim: 8 hidden_dim: 16 output_dim: 2 samples: 64 batch_size: 8 epochs: 2 learning_rate_micros: 50000 } }')
    write("fuzz_job_request", "submit_train_mlp", encode("SubmitJobRequest", f'account: "acme" request_id: "r-1" {spec}'))
    write("fuzz_job_request", "submit_sleep", encode("SubmitJobRequest", 'account: "a" request_id: "x" spec { kind: "sleep" gpu_count: 1 '
                                                     'bid_utok_per_gpu_hour: 1 max_duration_ms: 1 sleep { duration_ms: 1 } }'))
    write("fuzz_job_request", "extend", encode("ExtendJobRequest", 'job_id: 42 additional_duration_ms: 60000 request_id: "e-1"'))

    report = encode("UsageReport", "job_id: 9 attempt: 1 seq: 3 gpu_ms: 1000 measured_at_ms: 1700000000000 "
                                   "avg_gpu_utilization_ppm: 900000 energy_mj: 300000")
    # A worker id, a foreign key, the report, then the server side's integers from the end.
    for i, tail in enumerate([b"\x00" * 48, bytes(range(48)), b"\xff" * 48]):
        write("fuzz_usage_report", f"report_{i}", escaped(b"\x01" * 32) + escaped(report) + tail)

    proof = encode("UsageProof", "job_id: 1 attempt: 1 worker_id: 2 seq: 1 gpu_ms: 5 leaf_index: 0 tree_size: 1 "
                                 f'merkle_root: "{"x" * 32}"')
    write("fuzz_merkle", "wire_proof", proof + b"\x01")  # the last byte picks the wire-proof branch
    for n in (1, 2, 3, 7, 64):
        write("fuzz_merkle", f"batch_{n}", bytes((i * 37 + n) & 0xff for i in range(n * 60)) + bytes([n, 0, 2]))


if __name__ == "__main__":
    main()
