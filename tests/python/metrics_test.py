#!/usr/bin/env python3
"""The server's Prometheus metrics, scraped by a real Prometheus (Debian's `prometheus`): a server
with --metrics-listen and a CPU worker run jobs; Prometheus scrapes the server every second; the
test asserts on PromQL results through Prometheus' HTTP API (/api/v1/query), as a dashboard or an
alert would read them. And a metrics port already in use stops a second server at start, naming
the flag.

    python3 tests/python/metrics_test.py --build-dir build --source-dir .
    (cd build && ctest -R metrics_prometheus --output-on-failure)
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import api_client_test as support  # noqa: E402  (Server, parse_args, terminate_with_parent)

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
JOBS = 4


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read().decode()


class MetricsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.access(PROMETHEUS, os.X_OK):
            support.die("no prometheus binary: run scripts/install-deps.sh (Debian's prometheus package)")
        cls.work = tempfile.mkdtemp(prefix="tessera-metrics-")
        os.chmod(cls.work, 0o755)
        cls.metrics_port = free_port()
        cls.server = support.Server(support.ARGS.tessera, cls.work)
        cls.server.argv += ["--metrics-listen", f"127.0.0.1:{cls.metrics_port}"]
        cls.server.start()
        cls.address = f"127.0.0.1:{cls.server.port}"
        cls.admin = os.path.join(cls.server.data_dir, "admin.key")
        cls.cli("account", "create", "acme")
        cls.cli("account", "create", "gpuco", "--kind", "provider")
        cls.cli("billing", "deposit", "acme", "50000000", "--idempotency-key", "opening")
        provider_key = os.path.join(cls.work, "gpuco.key")
        with open(provider_key, "w") as f:
            f.write(cls.cli("admin", "create-key", "--role", "provider", "--account", "gpuco"))
        cls.worker_log = open(os.path.join(cls.work, "worker.log"), "ab")
        cls.worker = subprocess.Popen(
            [os.path.join(os.path.dirname(support.ARGS.tessera), "tessera-worker"), "--server", cls.address, "--provider", "gpuco",
             "--api-key-file", provider_key, "--cpu", "--gpus", "1", "--ask", "1000000", "--usage-interval-ms", "200",
             "--no-containers", "--state-dir", os.path.join(cls.work, "worker"), "--name", "w1"],
            stdout=cls.worker_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=support.terminate_with_parent)
        cls.prom_port = free_port()
        config = os.path.join(cls.work, "prometheus.yml")
        with open(config, "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                    "scrape_configs:\n"
                    f"  - job_name: tessera\n    static_configs: [{{targets: ['127.0.0.1:{cls.metrics_port}']}}]\n")
        cls.prom_log = open(os.path.join(cls.work, "prometheus.log"), "ab")
        cls.prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(cls.work, 'tsdb')}",
             f"--web.listen-address=127.0.0.1:{cls.prom_port}"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=support.terminate_with_parent)
        deadline = time.monotonic() + 60
        while True:
            try:
                if "Ready" in http_get(f"http://127.0.0.1:{cls.prom_port}/-/ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                support.die("prometheus did not become ready:\n" + open(os.path.join(cls.work, "prometheus.log")).read()[-3000:])
            time.sleep(0.2)

    @classmethod
    def tearDownClass(cls):
        for proc in (cls.prometheus, cls.worker):
            proc.terminate()
            proc.wait(30)
        cls.server.stop()
        if os.environ.get("TESSERA_KEEP_TEST_DIRS") != "1":
            shutil.rmtree(cls.work, ignore_errors=True)

    @classmethod
    def cli(cls, *args, check=True):
        r = subprocess.run([support.ARGS.tessera, "--server", f"127.0.0.1:{cls.server.port}", "--api-key-file",
                            os.path.join(cls.server.data_dir, "admin.key")] + list(args), capture_output=True, text=True)
        if check and r.returncode != 0:
            raise AssertionError(f"tessera {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    def query(self, promql):
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = json.loads(http_get(url))
        self.assertEqual(body["status"], "success", body)
        return body["data"]["result"]

    def eventually(self, promql, check, timeout=60):
        """The query's first value, once `check` holds for it (Prometheus scrapes every second)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            result = self.query(promql)
            if result:
                last = float(result[0]["value"][1])
                if check(last):
                    return last
            time.sleep(0.5)
        self.fail(f"{promql}: {last} after {timeout} s")

    def test_jobs_rpcs_scheduler_workers_and_ledger_through_promql(self):
        spec = os.path.join(self.work, "sleep.yaml")
        with open(spec, "w") as f:
            f.write("kind: sleep\ngpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 60000\nsleep: {duration_ms: 100}\n")
        for i in range(JOBS):
            self.cli("job", "submit", "-f", spec, "--account", "acme", "--request-id", f"metrics-{i}")
        self.cli("job", "get", "999999", check=False)  # a NOT_FOUND, counted by its code
        self.eventually('tessera_jobs{state="SUCCEEDED", kind="sleep", class="ON_DEMAND"}', lambda v: v == JOBS)
        self.eventually('sum(tessera_jobs_submitted_total{kind="sleep"})', lambda v: v == JOBS)
        self.eventually('sum(tessera_rpc_requests_total{service="tessera.v1.JobService", method="SubmitJob", code="OK"})',
                        lambda v: v == JOBS)
        self.eventually('sum(tessera_rpc_requests_total{method="GetJob", code="NOT_FOUND"})', lambda v: v >= 1)
        self.eventually('sum(tessera_placements_total)', lambda v: v >= JOBS)
        self.eventually('sum(tessera_scheduling_rounds_total)', lambda v: v >= 1)
        self.eventually('histogram_quantile(0.99, sum by (le) (tessera_rpc_duration_seconds_bucket{method="SubmitJob"}))',
                        lambda v: 0 < v <= 10)
        self.eventually('sum(tessera_workers{state="ACTIVE", gpu_model="CPU"})', lambda v: v == 1)
        self.eventually('sum(tessera_queue_jobs) or vector(0)', lambda v: v == 0)
        # Double entry: every bucket together sums to zero; the customer's deposit is there.
        self.eventually('sum(tessera_ledger_balance_utok)', lambda v: v == 0)
        self.eventually('tessera_ledger_balance_utok{bucket="earnings"}', lambda v: v > 0)

    def test_a_metrics_port_in_use_stops_a_second_server(self):
        work = tempfile.mkdtemp(prefix="tessera-metrics-busy-")
        os.chmod(work, 0o755)
        try:
            r = subprocess.run([support.ARGS.tessera, "server", "--listen", "127.0.0.1:0", "--data-dir", os.path.join(work, "data"),
                                "--no-fsync", "--metrics-listen", f"127.0.0.1:{self.metrics_port}"],
                               capture_output=True, text=True, timeout=120)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(f"--metrics-listen: cannot listen on 127.0.0.1:{self.metrics_port}", r.stdout + r.stderr)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    support.run_tests(__file__)
