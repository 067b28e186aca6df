"""Artifacts: a customer's bytes in and out. Uploads stream the file once, hashing as they go, with
the SHA-256 in the last message; downloads hash as they write, resume from a `.part` file, and keep
nothing whose digest differs. A directory is uploaded as a tar bundle (what a job's `code` names),
and bundles are unpacked refusing links, devices and paths that leave the directory."""

import hashlib
import os
import tarfile
import tempfile

from tessera.v1 import artifacts_pb2

from .errors import DataLoss, Unavailable

CHUNK = 1 << 20  # the server's largest message


def _bundle(directory):
    """A reproducible tar of `directory` (sorted, owner 0, mtime 0): the same files, the same digest."""
    out = tempfile.NamedTemporaryFile(prefix="tessera-bundle-", suffix=".tar", delete=False)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root, dirs, files in os.walk(directory):
            dirs.sort()
            for name in sorted(dirs) + sorted(files):
                path = os.path.join(root, name)
                if os.path.islink(path):
                    raise ValueError(f"{path}: a link cannot be bundled")
                info = tar.gettarinfo(path, arcname=os.path.relpath(path, directory))
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mtime = 0
                info.mode &= 0o755
                if info.isfile():
                    with open(path, "rb") as f:
                        tar.addfile(info, f)
                elif info.isdir():
                    tar.addfile(info)
    out.close()
    return out.name


def _unpack(tar_path, dest):
    """Regular files and directories only, each inside `dest`, without setuid bits."""
    dest = os.path.realpath(dest)
    os.makedirs(dest, exist_ok=True)
    with tarfile.open(tar_path) as tar:
        for member in tar:
            target = os.path.realpath(os.path.join(dest, member.name))
            if not (target == dest or target.startswith(dest + os.sep)) or os.path.isabs(member.name):
                raise DataLoss(f"{member.name}: outside the directory it unpacks into")
            if member.isdir():
                os.makedirs(target, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with tar.extractfile(member) as src, open(target, "wb") as out:
                    while block := src.read(CHUNK):
                        out.write(block)
                os.chmod(target, member.mode & 0o755)
            else:
                raise DataLoss(f"{member.name}: only files and directories are unpacked")


class Artifacts:
    def __init__(self, client):
        self._client = client

    def upload(self, path, account="", name=None):
        """Uploads a file, or a directory as a bundle; returns the tessera.v1.Artifact (its
        `digest` is what a job spec names)."""
        bundle = None
        kind = artifacts_pb2.ARTIFACT_KIND_FILE
        if os.path.isdir(path):
            bundle = _bundle(path)
            kind = artifacts_pb2.ARTIFACT_KIND_BUNDLE
        source = bundle or path
        try:
            size = os.path.getsize(source)
            header = artifacts_pb2.UploadArtifactHeader(account=account, size_bytes=size, kind=kind,
                                                        name=name or os.path.basename(os.path.normpath(path)))

            def messages():
                yield artifacts_pb2.UploadArtifactRequest(header=header)
                sha = hashlib.sha256()
                with open(source, "rb") as f:
                    while chunk := f.read(CHUNK):
                        sha.update(chunk)
                        yield artifacts_pb2.UploadArtifactRequest(chunk=chunk)
                yield artifacts_pb2.UploadArtifactRequest(digest="sha256:" + sha.hexdigest())

            # A stream cannot be replayed: an upload that broke is started again whole.
            for attempt in range(self._client.retries + 1):
                try:
                    return self._client._call_stream_unary(self._client._artifacts.UploadArtifact, messages())
                except Unavailable:
                    if attempt == self._client.retries:
                        raise
        finally:
            if bundle:
                os.unlink(bundle)

    def get(self, digest, account=""):
        return self._client._call(self._client._artifacts.GetArtifact, artifacts_pb2.GetArtifactRequest(account=account, digest=digest))

    def list(self, account=""):
        token = ""
        while True:
            page = self._client._call(self._client._artifacts.ListArtifacts,
                                      artifacts_pb2.ListArtifactsRequest(account=account, page_token=token))
            yield from page.artifacts
            token = page.next_page_token
            if not token:
                return

    def delete(self, digest, account=""):
        self._client._call(self._client._artifacts.DeleteArtifact, artifacts_pb2.DeleteArtifactRequest(account=account, digest=digest))

    def checkpoint(self, job_id):
        return self._client._call(self._client._artifacts.GetJobCheckpoint, artifacts_pb2.GetJobCheckpointRequest(job_id=int(job_id)))

    def download(self, digest, dest, account="", extract=False):
        """Downloads the artifact to the file `dest` (resuming from `dest`.part), or with
        extract=True unpacks the bundle into the directory `dest`; returns its record."""
        scratch = tempfile.TemporaryDirectory(prefix="tessera-download-") if extract else None
        target = os.path.join(scratch.name, "bundle.tar") if extract else dest
        part = target + ".part"
        sha = hashlib.sha256()
        if os.path.exists(part):
            with open(part, "rb") as f:
                while block := f.read(CHUNK):
                    sha.update(block)
        record = None
        for attempt in range(self._client.retries + 1):
            offset = os.path.getsize(part) if os.path.exists(part) else 0
            request = artifacts_pb2.DownloadArtifactRequest(account=account, digest=digest, offset=offset)
            try:
                with open(part, "ab") as out:
                    for message in self._client._stream(self._client._artifacts.DownloadArtifact, request):
                        if message.HasField("artifact"):
                            record = message.artifact
                        out.write(message.chunk)
                        sha.update(message.chunk)
                break
            except Unavailable:
                if attempt == self._client.retries:
                    raise
        got = "sha256:" + sha.hexdigest()
        if record is None or got != record.digest:
            os.unlink(part)
            raise DataLoss(f"the downloaded bytes hash to {got}, not {digest}; nothing was kept")
        os.replace(part, target)
        if extract:
            try:
                _unpack(target, dest)
            finally:
                scratch.cleanup()
        return record
