#!/usr/bin/env python3
"""The public gRPC API from another language: Python's grpcio (Debian's python3-grpcio and
python3-protobuf) drives a real `tessera server` through stubs generated from proto/ at test time,
so that the .proto files stay usable outside C++.

It starts the server on its embedded PostgreSQL in a temporary directory (as tests/support/e2e_cluster.h
does), reads the admin key the server issued into <data-dir>/admin.key, and over an insecure channel
with "authorization: Bearer <key>" metadata: creates the customer `acme`, deposits, reads the
balance, submits a small `sleep` job (no worker runs, so it stays QUEUED with its escrow held), gets
and lists it, cancels it, and checks that the escrow came back. One bad request (gpu_count 0) must be
INVALID_ARGUMENT; a google.rpc.Status in its grpc-status-details-bin trailer is decoded and printed,
and with TESSERA_EXPECT_BAD_REQUEST=1 in the environment it must carry a google.rpc.BadRequest whose
field violations name spec.gpu_count.

    python3 tests/python/api_client_test.py --build-dir build --source-dir .
    (cd build && ctest -R python_client --output-on-failure)

Nothing is skipped: without python3-grpcio, protoc or grpc_python_plugin the test fails and says
to run scripts/install-deps.sh. TESSERA_KEEP_TEST_DIRS=1 keeps the temporary directory (server log,
generated stubs) for a look.
"""

import argparse
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

# Debian's python3-grpcio and python3-protobuf are installed for the system interpreter only.
SYSTEM_PYTHON = "/usr/bin/python3"
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"
INSTALL_HINT = "run scripts/install-deps.sh as root (it installs python3-grpcio, python3-protobuf and protobuf-compiler-grpc)"

BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest"


def die(message):
    print("api_client_test: FAIL: " + message, file=sys.stderr, flush=True)
    sys.exit(1)


def import_grpc(script=__file__):
    """grpc, or a clear failure. Under another interpreter (pyenv, a venv) it re-runs `script` under
    /usr/bin/python3, where Debian's packages are."""
    try:
        import grpc  # noqa: F401
        import google.protobuf  # noqa: F401
        return grpc
    except ImportError as e:
        here = os.path.realpath(sys.executable or "")
        if (os.path.exists(SYSTEM_PYTHON) and here != os.path.realpath(SYSTEM_PYTHON)
                and os.environ.get("TESSERA_PYTHON_REEXEC") != "1"):
            print(f"api_client_test: {sys.executable} has no grpcio ({e}); running under {SYSTEM_PYTHON}",
                  file=sys.stderr, flush=True)
            os.environ["TESSERA_PYTHON_REEXEC"] = "1"
            os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON, os.path.abspath(script)] + sys.argv[1:])
        die(f"cannot import grpcio / protobuf under {sys.executable} ({e}): {INSTALL_HINT}")


def parse_args():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-dir", default=os.path.normpath(os.path.join(here, "..", "..")),
                        help="repository root (holds proto/)")
    parser.add_argument("--build-dir", default=None, help="CMake build directory (default <source-dir>/build)")
    parser.add_argument("--tessera", default=None, help="the tessera binary (default <build-dir>/services/tessera)")
    args, rest = parser.parse_known_args()
    args.source_dir = os.path.abspath(args.source_dir)
    args.build_dir = os.path.abspath(args.build_dir or os.path.join(args.source_dir, "build"))
    args.tessera = os.path.abspath(args.tessera or os.path.join(args.build_dir, "services", "tessera"))
    return args, rest


ARGS = None  # set in run_tests()


def generate_stubs(source_dir, out_dir):
    """protoc --python_out/--grpc_python_out of every tessera.v1 proto, and google.rpc status and
    error_details (the files the C++ build compiles, proto/google/rpc) for the rich error model."""
    proto_dir = os.path.join(source_dir, "proto")
    protos = sorted(glob.glob(os.path.join(proto_dir, "tessera", "v1", "*.proto")))
    if not protos:
        die(f"no proto/tessera/v1/*.proto under {source_dir} (pass --source-dir)")
    protos += [os.path.join(proto_dir, "google", "rpc", name + ".proto") for name in ("status", "error_details")]
    protoc = shutil.which("protoc")
    if protoc is None or not os.access(GRPC_PYTHON_PLUGIN, os.X_OK):
        die(f"protoc and {GRPC_PYTHON_PLUGIN} are needed to generate the Python stubs: {INSTALL_HINT}")
    os.makedirs(out_dir, exist_ok=True)
    cmd = [protoc, f"--python_out={out_dir}", f"--grpc_python_out={out_dir}",
           f"--plugin=protoc-gen-grpc_python={GRPC_PYTHON_PLUGIN}", "-I", proto_dir] + protos
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        die("protoc failed:\n  " + " ".join(cmd) + "\n" + r.stdout + r.stderr)
    sys.path.insert(0, out_dir)
    # `google` is a namespace package in Debian's python3-protobuf; should some installation make it
    # a regular package, google.rpc must still be found among the generated stubs.
    import google
    extra = os.path.join(out_dir, "google")
    if hasattr(google, "__path__") and extra not in list(google.__path__):
        google.__path__.append(extra)


def bad_request_class(out_dir):
    """google.rpc.BadRequest from proto/google/rpc/error_details.proto when it defines it; otherwise a
    test-local message of the same wire layout (googleapis' error_details.proto), so a detail can be
    decoded whichever of the two the checkout has."""
    from google.rpc import error_details_pb2
    if hasattr(error_details_pb2, "BadRequest"):
        return error_details_pb2.BadRequest
    local = os.path.join(out_dir, "tessera_pytest")
    os.makedirs(local, exist_ok=True)
    with open(os.path.join(local, "bad_request.proto"), "w") as f:
        f.write('syntax = "proto3";\n'
                "package tessera_pytest;\n"
                "// Wire-compatible with googleapis' google.rpc.BadRequest.\n"
                "message BadRequest {\n"
                "  message FieldViolation {\n"
                "    string field = 1;\n"
                "    string description = 2;\n"
                "    string reason = 3;\n"
                "  }\n"
                "  repeated FieldViolation field_violations = 1;\n"
                "}\n")
    r = subprocess.run(["protoc", f"--python_out={out_dir}", "-I", out_dir, "tessera_pytest/bad_request.proto"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        die("protoc failed on the local BadRequest:\n" + r.stdout + r.stderr)
    from tessera_pytest import bad_request_pb2
    return bad_request_pb2.BadRequest


def terminate_with_parent():
    """In the child before exec: SIGTERM it when this test dies, even by SIGKILL (ctest's timeout), so
    that no server outlives the test (the server stops its PostgreSQL on SIGTERM)."""
    try:
        import ctypes
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Server:
    """A `tessera server` with its embedded PostgreSQL in `work_dir`/data, on a port it picks
    (--listen 127.0.0.1:0, the port written to --port-file)."""

    def __init__(self, tessera, work_dir):
        self.work_dir = work_dir
        self.data_dir = os.path.join(work_dir, "data")
        self.port_file = os.path.join(work_dir, "port")
        self.log_path = os.path.join(work_dir, "server.log")
        self.proc = None
        if not os.access(tessera, os.X_OK):
            die(f"no server binary at {tessera}: build it (ninja -C build tessera) or pass --tessera/--build-dir")
        self.argv = [tessera, "server", "--listen", "127.0.0.1:0", "--data-dir", self.data_dir,
                     "--port-file", self.port_file, "--no-fsync"]

    def start(self, timeout_s=120):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=terminate_with_parent)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die(f"the server exited with status {self.proc.returncode} before serving:\n{self.log_tail()}")
            try:
                with open(self.port_file) as f:
                    text = f.read().strip()
                if text:
                    self.port = int(text)
                    return
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        die(f"the server wrote no port file in {timeout_s} s:\n{self.log_tail()}")

    def admin_key(self):
        path = os.path.join(self.data_dir, "admin.key")
        with open(path) as f:
            key = f.read().strip()
        if not key:
            die(f"{path} is empty")
        return key

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop(self):
        """SIGTERM (orderly: the server stops its PostgreSQL), SIGKILL after 30 s; then PostgreSQL
        is stopped in case the server could not (as Cluster's destructor does)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        pg_dir = os.path.join(self.data_dir, "pg")
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if bins and os.path.exists(os.path.join(pg_dir, "postmaster.pid")):
            cmd = [bins[-1], "-D", pg_dir, "-m", "immediate", "stop"]
            if os.geteuid() == 0:
                cmd = ["runuser", "-u", "postgres", "--"] + cmd
            subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if getattr(self, "log", None):
            self.log.close()


def rich_status(grpc_error):
    """The google.rpc.Status in the call's grpc-status-details-bin trailer, or None."""
    from google.rpc import status_pb2
    for key, value in grpc_error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status()
            status.ParseFromString(value)
            return status
    return None


def bad_request_violations(grpc_error, bad_request_cls):
    """Prints the rich status (if any) and returns the field violations of its BadRequest details
    as (field, description) pairs; None when there is no BadRequest detail."""
    status = rich_status(grpc_error)
    if status is None:
        print("  no grpc-status-details-bin trailer (no rich error details)")
        return None
    print(f"  google.rpc.Status code={status.code} message={status.message!r}, {len(status.details)} detail(s)")
    violations = None
    for any_detail in status.details:
        print(f"    detail {any_detail.type_url}")
        if any_detail.type_url == BAD_REQUEST_TYPE_URL:
            bad = bad_request_cls()
            bad.ParseFromString(any_detail.value)
            violations = violations or []
            for v in bad.field_violations:
                print(f"      field violation: {v.field}: {v.description}")
                violations.append((v.field, v.description))
    return violations


class ApiClientTest(unittest.TestCase):
    DEPOSIT = 10_000_000
    # 3,600,000 µT per GPU-hour × 1 GPU × 60,000 ms / 3,600,000 = 60,000 µT held, exactly.
    BID = 3_600_000
    MAX_DURATION_MS = 60_000
    HOLD = 60_000

    @classmethod
    def setUpClass(cls):
        cls.grpc = import_grpc()
        cls.work_dir = tempfile.mkdtemp(prefix="tessera-pyclient-")
        # The embedded PostgreSQL runs as `postgres` when we are root: it must reach the data dir.
        os.chmod(cls.work_dir, 0o755)
        cls.server = None
        cls.channel = None
        try:
            generate_stubs(ARGS.source_dir, os.path.join(cls.work_dir, "stubs"))
            from tessera.v1 import admin_pb2, admin_pb2_grpc, billing_pb2, billing_pb2_grpc, common_pb2
            from tessera.v1 import jobs_pb2, jobs_pb2_grpc
            cls.admin_pb2, cls.billing_pb2, cls.common_pb2, cls.jobs_pb2 = admin_pb2, billing_pb2, common_pb2, jobs_pb2
            cls.bad_request_cls = bad_request_class(os.path.join(cls.work_dir, "stubs"))

            cls.server = Server(ARGS.tessera, cls.work_dir)
            cls.server.start()
            address = f"127.0.0.1:{cls.server.port}"
            print(f"server on {address}, data in {cls.server.data_dir}", flush=True)
            cls.metadata = (("authorization", "Bearer " + cls.server.admin_key()),)
            cls.channel = cls.grpc.insecure_channel(address)
            cls.grpc.channel_ready_future(cls.channel).result(timeout=30)
            cls.admin = admin_pb2_grpc.AdminServiceStub(cls.channel)
            cls.billing = billing_pb2_grpc.BillingServiceStub(cls.channel)
            cls.jobs = jobs_pb2_grpc.JobServiceStub(cls.channel)
        except BaseException:
            cls.cleanUp()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.cleanUp()

    @classmethod
    def cleanUp(cls):
        if cls.channel is not None:
            cls.channel.close()
            cls.channel = None
        if cls.server is not None:
            cls.server.stop()
            cls.server = None
        if os.environ.get("TESSERA_KEEP_TEST_DIRS"):
            print(f"kept {cls.work_dir}")
        else:
            shutil.rmtree(cls.work_dir, ignore_errors=True)

    def call(self, method, request):
        """A unary call as the admin; a gRPC error fails the test with its code, message and the
        server's log."""
        try:
            return method(request, metadata=self.metadata, timeout=30)
        except self.grpc.RpcError as e:
            self.fail(f"{type(request).__name__} → {e.code().name}: {e.details()}\nserver log:\n{self.server.log_tail()}")

    def balance(self):
        return self.call(self.billing.GetBalance, self.billing_pb2.GetBalanceRequest(account="acme"))

    def job_spec(self, gpu_count):
        return self.jobs_pb2.JobSpec(kind="sleep", gpu_count=gpu_count, bid_utok_per_gpu_hour=self.BID,
                                     max_duration_ms=self.MAX_DURATION_MS,
                                     sleep=self.jobs_pb2.SleepParams(duration_ms=1_000))

    def test_1_account_deposit_job_lifecycle(self):
        jobs_pb2, common_pb2 = self.jobs_pb2, self.common_pb2
        account = self.call(self.admin.CreateAccount, self.admin_pb2.CreateAccountRequest(
            name="acme", kind=common_pb2.ACCOUNT_KIND_CUSTOMER))
        self.assertEqual(account.name, "acme")
        self.assertEqual(account.kind, common_pb2.ACCOUNT_KIND_CUSTOMER)
        self.assertGreater(account.account_id, 0, f"CreateAccount returned {account}")

        transfer = self.call(self.billing.Deposit, self.billing_pb2.DepositRequest(
            account="acme", amount_utok=self.DEPOSIT, idempotency_key="python-client-deposit"))
        self.assertEqual(transfer.amount_utok, self.DEPOSIT, f"Deposit returned {transfer}")
        self.assertEqual(transfer.kind, self.billing_pb2.TRANSFER_KIND_DEPOSIT)
        balance = self.balance()
        self.assertEqual((balance.available_utok, balance.escrow_utok), (self.DEPOSIT, 0),
                         f"balance after the deposit: {balance}")

        submitted = self.call(self.jobs.SubmitJob, jobs_pb2.SubmitJobRequest(
            account="acme", request_id="python-client-job-1", spec=self.job_spec(gpu_count=1)))
        self.assertFalse(submitted.deduplicated)
        job_id = submitted.job.job_id
        self.assertGreater(job_id, 0, f"SubmitJob returned {submitted}")

        # No worker is connected: the job waits in the queue with its escrow held.
        job = self.call(self.jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id))
        self.assertEqual(common_pb2.JobState.Name(job.state), "JOB_STATE_QUEUED", f"GetJob: {job}")
        self.assertGreater(job.hold_utok, 0, f"GetJob: {job}")
        self.assertEqual(job.hold_utok, self.HOLD, "hold = bid × gpu_count × max_duration_ms / 3,600,000")
        self.assertEqual((job.account, job.spec.kind, job.spec.gpu_count), ("acme", "sleep", 1))
        print(f"job {job_id} QUEUED, hold {job.hold_utok} µT, wait reason: {job.wait_reason!r}")
        balance = self.balance()
        self.assertEqual((balance.available_utok, balance.escrow_utok), (self.DEPOSIT - self.HOLD, self.HOLD),
                         f"balance with the job queued: {balance}")

        listed = self.call(self.jobs.ListJobs, jobs_pb2.ListJobsRequest(account="acme"))
        self.assertIn(job_id, [j.job_id for j in listed.jobs], f"ListJobs: {listed}")
        queued = self.call(self.jobs.ListJobs, jobs_pb2.ListJobsRequest(account="acme", state=common_pb2.JOB_STATE_QUEUED))
        self.assertEqual([j.job_id for j in queued.jobs], [job_id], f"ListJobs(QUEUED): {queued}")

        cancelled = self.call(self.jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=job_id))
        self.assertEqual(common_pb2.JobState.Name(cancelled.state), "JOB_STATE_CANCELLED", f"CancelJob: {cancelled}")
        job = self.call(self.jobs.GetJob, jobs_pb2.GetJobRequest(job_id=job_id))
        self.assertEqual(common_pb2.JobState.Name(job.state), "JOB_STATE_CANCELLED", f"GetJob after CancelJob: {job}")

        # The whole escrow returns to `available` (settlement may close the hold a moment later).
        deadline = time.monotonic() + 15
        balance = self.balance()
        while balance.escrow_utok != 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            balance = self.balance()
        self.assertEqual((balance.available_utok, balance.escrow_utok), (self.DEPOSIT, 0),
                         f"balance after CancelJob: {balance}")

        # Cancelling it again: a terminal job is FAILED_PRECONDITION.
        with self.assertRaises(self.grpc.RpcError) as raised:
            self.jobs.CancelJob(jobs_pb2.CancelJobRequest(job_id=job_id), metadata=self.metadata, timeout=30)
        self.assertEqual(raised.exception.code(), self.grpc.StatusCode.FAILED_PRECONDITION, raised.exception.details())

    def test_2_invalid_argument(self):
        request = self.jobs_pb2.SubmitJobRequest(account="acme", request_id="python-client-bad",
                                                 spec=self.job_spec(gpu_count=0))
        with self.assertRaises(self.grpc.RpcError, msg="SubmitJob with gpu_count 0 succeeded") as raised:
            self.jobs.SubmitJob(request, metadata=self.metadata, timeout=30)
        error = raised.exception
        print(f"SubmitJob(gpu_count=0) → {error.code().name}: {error.details()}")
        self.assertEqual(error.code(), self.grpc.StatusCode.INVALID_ARGUMENT, error.details())
        self.assertIn("gpu_count", error.details())
        violations = bad_request_violations(error, self.bad_request_cls)
        if os.environ.get("TESSERA_EXPECT_BAD_REQUEST") == "1":
            self.assertIsNotNone(violations, "TESSERA_EXPECT_BAD_REQUEST=1: the INVALID_ARGUMENT carries no "
                                 "google.rpc.BadRequest detail in grpc-status-details-bin")
            fields = [field for field, _ in violations]
            self.assertTrue(any(f == "spec.gpu_count" or f.endswith(".gpu_count") or f == "gpu_count" for f in fields),
                            f"no field violation names spec.gpu_count: {violations}")
            self.assertTrue(all(description for _, description in violations), f"a violation without description: {violations}")


def run_tests(script):
    """The main() of `script`, this file or a test beside it: its arguments parsed into ARGS (which
    the script reads as `support.ARGS`), grpc imported (re-running `script` under the system Python
    if need be), SIGTERM (ctest's timeout) turned into an orderly exit, then its unittest cases."""
    global ARGS
    ARGS, rest = parse_args()
    import_grpc(script)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    unittest.main(module="__main__", argv=[sys.argv[0]] + rest, verbosity=2)


if __name__ == "__main__":
    run_tests(__file__)
