"""Tessera's Python client.

    import tessera_client as tessera
    with tessera.Client() as client:                    # TESSERA_SERVER, TESSERA_API_KEY(_FILE)
        data = client.artifacts.upload("train.csv", account="acme")
        job = client.submit({"gpu_count": 1, "bid_utok_per_gpu_hour": 2_000_000, "max_duration_ms": 600_000,
                             "container": {"command": ["python3", "-c", "print('hi')"]}}, account="acme")
        for line in job.logs(follow=True):
            print(line.text)
        job.wait(check=True).outputs("./outputs")

The generated stubs are importable too: `from tessera.v1 import jobs_pb2, jobs_pb2_grpc`.
"""

from .client import Client, load_spec
from .errors import (AlreadyExists, DataLoss, DeadlineExceeded, FailedPrecondition, InvalidArgument, JobFailed, NotFound,
                     OutOfRange, PermissionDenied, ResourceExhausted, TesseraError, Unauthenticated, Unavailable)
from .jobs import Job

__all__ = ["Client", "Job", "load_spec", "TesseraError", "InvalidArgument", "NotFound", "AlreadyExists", "PermissionDenied",
           "Unauthenticated", "FailedPrecondition", "ResourceExhausted", "OutOfRange", "Unavailable", "DeadlineExceeded",
           "DataLoss", "JobFailed"]
