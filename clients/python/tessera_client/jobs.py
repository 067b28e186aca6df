"""Job: one job's record, refreshed on demand, and what a customer does with it: wait for it,
follow its logs, fetch its outputs, cancel or extend it."""

import time
import uuid

from tessera.v1 import common_pb2, jobs_pb2, logs_pb2

from .errors import JobFailed, Unavailable

TERMINAL = (common_pb2.JOB_STATE_SUCCEEDED, common_pb2.JOB_STATE_FAILED, common_pb2.JOB_STATE_CANCELLED)


class Job:
    """A job as last read from the server (`record`, a tessera.v1.Job). Attributes of the record
    read through: job.job_id, job.attempt, job.wait_reason, job.result…"""

    def __init__(self, client, record):
        self._client = client
        self.record = record

    def __getattr__(self, name):
        return getattr(self.record, name)

    def __repr__(self):
        return f"<Job {self.record.job_id} {self.state_name} attempt {self.record.attempt}>"

    @property
    def state_name(self):
        """"QUEUED", "RUNNING", "SUCCEEDED"…"""
        return common_pb2.JobState.Name(self.record.state).removeprefix("JOB_STATE_")

    @property
    def done(self):
        return self.record.state in TERMINAL

    @property
    def error(self):
        return self.record.result.error

    def refresh(self):
        self.record = self._client.job(self.record.job_id).record
        return self

    def wait(self, timeout=None, poll=0.5, check=False):
        """Until the job ends (or `timeout` seconds: TimeoutError). With check=True a job that did
        not succeed raises JobFailed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.refresh().done:
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.record.job_id} is still {self.state_name} after {timeout} s")
            time.sleep(poll)
        if check and self.record.state != common_pb2.JOB_STATE_SUCCEEDED:
            raise JobFailed(self)
        return self

    def cancel(self):
        self.record = self._client._call(self._client._jobs.CancelJob, jobs_pb2.CancelJobRequest(job_id=self.record.job_id))
        return self

    def extend(self, seconds, request_id=None):
        """More run time (its escrow grows with it)."""
        request = jobs_pb2.ExtendJobRequest(job_id=self.record.job_id, additional_duration_ms=int(seconds * 1000),
                                            request_id=request_id or f"py-{uuid.uuid4()}")
        self.record = self._client._call(self._client._jobs.ExtendJob, request)
        return self

    def logs(self, follow=False, attempt=0, tail=0):
        """The job's output lines (tessera.v1.LogLine: attempt, node, seq, time_ms, stream, text),
        in order, every attempt's unless `attempt` is given. With follow=True it goes on until the
        job has ended and its output is complete, resuming where it stopped if the stream breaks."""
        after = {}  # (attempt, node) -> the next seq wanted
        first = True
        while True:
            request = logs_pb2.ReadJobLogRequest(job_id=self.record.job_id, attempt=attempt, follow=follow,
                                                 tail_lines=tail if first else 0)
            for (a, n), seq in after.items():
                request.after.add(attempt=a, node=n, next_seq=seq)
            try:
                for response in self._client._stream(self._client._logs.ReadJobLog, request):
                    for line in response.lines:
                        after[(line.attempt, line.node)] = line.seq + 1
                        yield line
                return
            except Unavailable:
                if not follow:
                    raise
                first = False
                time.sleep(0.5)

    def outputs(self, dest, checkpoint=False):
        """Downloads the job's /job/outputs (or its newest checkpoint), digest-checked, and unpacks
        them into `dest`; returns the artifact record."""
        if checkpoint:
            saved = self._client.artifacts.checkpoint(self.record.job_id)
            digest = saved.artifact.digest
        else:
            digest = self.refresh().record.result.container.outputs_digest
            if not digest:
                raise ValueError(f"job {self.record.job_id} ({self.state_name}) has no outputs")
        return self._client.artifacts.download(digest, dest, account=self.record.account, extract=True)

