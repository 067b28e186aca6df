"""Client: one channel to a Tessera server with an API key, and the calls a customer makes.

    client = Client()                                   # TESSERA_SERVER, TESSERA_API_KEY(_FILE), TESSERA_TLS_CA
    job = client.submit({"gpu_count": 1, ...}, account="acme")
    job.wait()
"""

import os
import time
import uuid

import grpc
from google.protobuf import json_format

from tessera.v1 import artifacts_pb2_grpc, billing_pb2, billing_pb2_grpc, jobs_pb2, jobs_pb2_grpc, logs_pb2_grpc

from .artifacts import Artifacts
from .errors import from_rpc_error
from .jobs import Job

DEFAULT_SERVER = "127.0.0.1:7070"  # as the CLI's
# Worth trying again: the server restarting, a connection broken, a leader changing.
RETRIED = (grpc.StatusCode.UNAVAILABLE,)


def _read_key(api_key, api_key_file):
    if api_key:
        return api_key
    if os.environ.get("TESSERA_API_KEY"):
        return os.environ["TESSERA_API_KEY"]
    path = api_key_file or os.environ.get("TESSERA_API_KEY_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    raise ValueError("no API key: pass api_key= or api_key_file=, or set TESSERA_API_KEY or TESSERA_API_KEY_FILE")


def load_spec(path):
    """A job spec file (YAML or JSON, as `tessera job submit -f` reads) as a dict."""
    with open(path) as f:
        text = f.read()
    if path.endswith(".json"):
        import json

        return json.loads(text)
    import yaml  # Debian's python3-yaml

    return yaml.safe_load(text)


class Client:
    """A Tessera server, called with one API key. Thread-safe; close() it (or use `with`)."""

    def __init__(self, server=None, api_key=None, *, api_key_file=None, tls_ca=None, tls_server_name=None, timeout=30.0,
                 retries=5):
        self.server = server or os.environ.get("TESSERA_SERVER") or DEFAULT_SERVER
        key = _read_key(api_key, api_key_file)
        self.timeout = timeout
        self.retries = retries
        self._metadata = (("authorization", f"Bearer {key}"),)
        ca = tls_ca or os.environ.get("TESSERA_TLS_CA")
        options = [("grpc.max_receive_message_length", 16 << 20)]
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if ca:
            with open(ca, "rb") as f:
                self._channel = grpc.secure_channel(self.server, grpc.ssl_channel_credentials(root_certificates=f.read()), options)
        else:
            self._channel = grpc.insecure_channel(self.server, options)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._billing = billing_pb2_grpc.BillingServiceStub(self._channel)
        self._logs = logs_pb2_grpc.LogServiceStub(self._channel)
        self._artifacts = artifacts_pb2_grpc.ArtifactServiceStub(self._channel)
        self.artifacts = Artifacts(self)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # One unary call, retried while the server is unavailable (each call here is idempotent: reads,
    # or writes that carry a request id); any other failure raises its TesseraError.
    def _call(self, method, request, timeout=None):
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=timeout or self.timeout, metadata=self._metadata)
            except grpc.RpcError as e:
                if e.code() not in RETRIED or attempt == self.retries:
                    raise from_rpc_error(e) from None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _call_stream_unary(self, method, requests):
        try:
            return method(requests, metadata=self._metadata)  # no deadline: a big upload takes what it takes
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def _stream(self, method, request, timeout=None):
        try:
            yield from method(request, timeout=timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # Jobs.
    def submit(self, spec, account="", request_id=None):
        """Submits a job: `spec` is a JobSpec, or a dict as a spec file holds it ({"gpu_count": 1,
        "container": {...}}). Retried safely: a request id (made here when not given) makes a
        repeated submit the same job."""
        if not isinstance(spec, jobs_pb2.JobSpec):
            spec = json_format.ParseDict(spec, jobs_pb2.JobSpec())
        request = jobs_pb2.SubmitJobRequest(account=account, request_id=request_id or f"py-{uuid.uuid4()}", spec=spec)
        return Job(self, self._call(self._jobs.SubmitJob, request).job)

    def job(self, job_id):
        return Job(self, self._call(self._jobs.GetJob, jobs_pb2.GetJobRequest(job_id=int(job_id))))

    def jobs(self, account="", state=None):
        """The account's jobs, newest first, every page."""
        token = ""
        while True:
            request = jobs_pb2.ListJobsRequest(account=account, page_size=200, page_token=token)
            if state is not None:
                request.state = state
            page = self._call(self._jobs.ListJobs, request)
            for j in page.jobs:
                yield Job(self, j)
            token = page.next_page_token
            if not token:
                return

    # Money.
    def balance(self, account=""):
        """The account's balance (available, held) in micro-tokens."""
        return self._call(self._billing.GetBalance, billing_pb2.GetBalanceRequest(account=account))

    def invoice(self, job_id):
        return self._call(self._billing.GetJobInvoice, billing_pb2.GetJobInvoiceRequest(job_id=int(job_id)))
