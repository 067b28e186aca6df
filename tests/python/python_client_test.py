#!/usr/bin/env python3
"""The Python client package (clients/python) against a real server and worker: it is installed
with pip from the checkout (its stubs generated from proto/ by its build), then, as a customer
would use it: artifacts up and down (a file, a directory as a bundle, digest-checked), a job
submitted from a dict, waited for, its logs followed and its outputs fetched (a container job where
this machine can make sandboxes; a built-in `sleep` job everywhere), a retried submit with the same
request id, and typed errors: INVALID_ARGUMENT naming the field, NOT_FOUND for a job that is not
there and for another customer's, UNAUTHENTICATED for a bad key.

    python3 tests/python/python_client_test.py --build-dir build --source-dir .
    (cd build && ctest -R python_package --output-on-failure)
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import unittest.mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import api_client_test as support  # noqa: E402  (Server, parse_args, terminate_with_parent)



def cli(*args, key_file=None, check=True):
    argv = [support.ARGS.tessera, "--server", f"127.0.0.1:{ServerFixture.server.port}", "--api-key-file",
            key_file or ServerFixture.admin_key_file] + list(args)
    r = subprocess.run(argv, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed: {r.stdout}{r.stderr}")
    return r.stdout


class ServerFixture:
    server = None
    admin_key_file = None


class PythonClientTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="tessera-pyclient-")
        os.chmod(cls.work, 0o755)  # the embedded PostgreSQL runs as postgres when this is root
        # The package as a customer installs it: pip, from the checkout, no index.
        # (A copy is built, so that the checkout gets no build/ of pip's.)
        site, package = os.path.join(cls.work, "site"), os.path.join(cls.work, "package")
        shutil.copytree(os.path.join(support.ARGS.source_dir, "clients", "python"), package)
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index",
                            "--target", site, package], capture_output=True, text=True,
                           env=dict(os.environ, TESSERA_PROTO_DIR=os.path.join(support.ARGS.source_dir, "proto")))
        if r.returncode != 0:
            support.die("pip install clients/python failed:\n" + r.stdout + r.stderr)
        sys.path.insert(0, site)
        global tessera
        import tessera_client as tessera

        ServerFixture.server = support.Server(support.ARGS.tessera, cls.work)
        ServerFixture.server.start()
        ServerFixture.admin_key_file = os.path.join(ServerFixture.server.data_dir, "admin.key")
        cli("account", "create", "acme")
        cli("account", "create", "globex")
        cli("account", "create", "gpuco", "--kind", "provider")
        cli("billing", "deposit", "acme", "50000000", "--idempotency-key", "opening")
        keys = {}
        for role, account in (("customer", "acme"), ("customer", "globex"), ("provider", "gpuco")):
            keys[account] = os.path.join(cls.work, account + ".key")
            with open(keys[account], "w") as f:
                f.write(cli("admin", "create-key", "--role", role, "--account", account))
        cls.keys = keys
        worker_bin = os.path.join(os.path.dirname(support.ARGS.tessera), "tessera-worker")
        cls.worker_log = open(os.path.join(cls.work, "worker.log"), "ab")
        cls.worker = subprocess.Popen(
            [worker_bin, "--server", f"127.0.0.1:{ServerFixture.server.port}", "--provider", "gpuco", "--api-key-file", keys["gpuco"],
             "--cpu", "--gpus", "1", "--ask", "1000000", "--usage-interval-ms", "200", "--no-images", "--state-dir",
             os.path.join(cls.work, "worker"), "--name", "w1"],
            stdout=cls.worker_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=support.terminate_with_parent)
        cls.client = tessera.Client(f"127.0.0.1:{ServerFixture.server.port}", api_key_file=keys["acme"])
        # Whether the worker runs container jobs (a sandbox works here: not in a chroot).
        deadline = time.monotonic() + 60
        cls.containers = None
        while cls.containers is None and time.monotonic() < deadline:
            with open(os.path.join(cls.work, "worker.log"), errors="replace") as f:
                log = f.read()
            if "container jobs: on" in log:
                cls.containers = True
            elif "container jobs: off" in log:
                cls.containers = False
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        cls.worker.terminate()
        cls.worker.wait(30)
        ServerFixture.server.stop()
        if os.environ.get("TESSERA_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(cls.work, ignore_errors=True)

    def spec(self, **workload):
        spec = {"gpu_count": 1, "bid_utok_per_gpu_hour": 2000000, "max_duration_ms": 120000}
        spec.update(workload)
        return spec

    def test_artifacts_up_and_down(self):
        data = os.path.join(self.work, "train.csv")
        with open(data, "wb") as f:
            f.write(os.urandom(3 << 20))  # several messages each way
        uploaded = self.client.artifacts.upload(data, account="acme")
        self.assertTrue(uploaded.digest.startswith("sha256:"))
        self.assertEqual(uploaded.size_bytes, 3 << 20)
        self.assertEqual(self.client.artifacts.get(uploaded.digest, account="acme").name, "train.csv")
        got = os.path.join(self.work, "got.csv")
        self.client.artifacts.download(uploaded.digest, got, account="acme")
        with open(data, "rb") as a, open(got, "rb") as b:
            self.assertEqual(a.read(), b.read())
        self.assertIn(uploaded.digest, [a.digest for a in self.client.artifacts.list(account="acme")])
        # A directory goes as a bundle and comes back unpacked.
        src = os.path.join(self.work, "src")
        os.makedirs(os.path.join(src, "pkg"))
        with open(os.path.join(src, "pkg", "train.py"), "w") as f:
            f.write("print('hi')\n")
        bundle = self.client.artifacts.upload(src, account="acme", name="code")
        self.assertEqual(bundle.kind, 2)  # ARTIFACT_KIND_BUNDLE
        out = os.path.join(self.work, "unpacked")
        self.client.artifacts.download(bundle.digest, out, account="acme", extract=True)
        with open(os.path.join(out, "pkg", "train.py")) as f:
            self.assertEqual(f.read(), "print('hi')\n")
        # Another customer sees none of it.
        with tessera.Client(f"127.0.0.1:{ServerFixture.server.port}", api_key_file=self.keys["globex"]) as globex:
            with self.assertRaises(tessera.NotFound):
                globex.artifacts.get(uploaded.digest)

    def test_a_job_submitted_waited_for_and_retried(self):
        job = self.client.submit(self.spec(sleep={"duration_ms": 100}), account="acme", request_id="py-sleep-1")
        self.assertIn(job.state_name, ("QUEUED", "ASSIGNED", "RUNNING", "SUCCEEDED"))
        done = job.wait(timeout=60, check=True)
        self.assertEqual(done.state_name, "SUCCEEDED")
        self.assertGreater(self.client.invoice(job.job_id).lines[0].gpu_ms, 0)
        again = self.client.submit(self.spec(sleep={"duration_ms": 100}), account="acme", request_id="py-sleep-1")
        self.assertEqual(again.job_id, job.job_id)  # the same request id is the same job
        self.assertIn(job.job_id, [j.job_id for j in self.client.jobs(account="acme")])

    def test_a_container_job_its_logs_and_outputs(self):
        if not self.containers:
            print("SKIPPED: this machine makes no sandboxes (the worker offers no container jobs)", file=sys.stderr)
            return
        src = os.path.join(self.work, "job-src")
        os.makedirs(src, exist_ok=True)
        with open(os.path.join(src, "train.py"), "w") as f:
            f.write("import os, sys\n"
                    "for epoch in range(3):\n"
                    "    print('epoch', epoch, flush=True)\n"
                    "print('warning', file=sys.stderr)\n"
                    "open('/job/outputs/model.txt', 'w').write('weights')\n")
        code = self.client.artifacts.upload(src, account="acme", name="code")
        job = self.client.submit(self.spec(container={"command": ["python3", "/job/code/train.py"], "code": code.digest}),
                                 account="acme")
        lines = [(line.stream, line.text) for line in job.logs(follow=True)]
        self.assertEqual([t for s, t in lines if s == 1], ["epoch 0", "epoch 1", "epoch 2"])  # LOG_STREAM_STDOUT
        self.assertIn((2, "warning"), lines)  # LOG_STREAM_STDERR
        job.wait(timeout=60, check=True)
        dest = os.path.join(self.work, "outputs")
        job.outputs(dest)
        with open(os.path.join(dest, "model.txt")) as f:
            self.assertEqual(f.read(), "weights")

    def test_typed_errors(self):
        with self.assertRaises(tessera.InvalidArgument) as bad:
            self.client.submit(self.spec(sleep={"duration_ms": 1}, gpu_count=0), account="acme")
        self.assertIn("spec.gpu_count", bad.exception.message)
        self.assertEqual(bad.exception.code.name, "INVALID_ARGUMENT")
        with self.assertRaises(tessera.NotFound):
            self.client.job(987654)
        theirs = self.client.submit(self.spec(sleep={"duration_ms": 1}), account="acme")
        with tessera.Client(f"127.0.0.1:{ServerFixture.server.port}", api_key_file=self.keys["globex"]) as globex:
            with self.assertRaises(tessera.NotFound):
                globex.job(theirs.job_id)
        with tessera.Client(f"127.0.0.1:{ServerFixture.server.port}", api_key="tsk_not_a_real_key_at_all_000000000000") as nobody:
            with self.assertRaises((tessera.Unauthenticated, tessera.InvalidArgument)):
                nobody.balance()
        with unittest.mock.patch.dict(os.environ):
            os.environ.pop("TESSERA_API_KEY", None)
            os.environ.pop("TESSERA_API_KEY_FILE", None)
            with self.assertRaises(ValueError):  # no key anywhere: said before any call
                tessera.Client("127.0.0.1:1")


if __name__ == "__main__":
    support.run_tests(__file__)
