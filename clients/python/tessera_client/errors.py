"""Typed errors: every failed call raises a TesseraError subclass named after its gRPC code, with
the code and the server's message (which names the field at fault, as in
"spec.gpu_count must be between 1 and 64, got 0")."""

import grpc


class TesseraError(Exception):
    """A call the server (or the channel) refused: `code` (a grpc.StatusCode) and `message`."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, code: grpc.StatusCode = None):
        self.code = code or self.default_code
        self.message = message
        super().__init__(f"{self.code.name}: {message}")


class InvalidArgument(TesseraError):
    default_code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(TesseraError):
    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(TesseraError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class PermissionDenied(TesseraError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(TesseraError):
    default_code = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(TesseraError):
    default_code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(TesseraError):
    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OutOfRange(TesseraError):
    default_code = grpc.StatusCode.OUT_OF_RANGE


class Unavailable(TesseraError):
    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(TesseraError):
    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class DataLoss(TesseraError):
    default_code = grpc.StatusCode.DATA_LOSS


class JobFailed(TesseraError):
    """job.wait(check=True) on a job that ended FAILED or CANCELLED; `job` is its last record."""

    def __init__(self, job):
        super().__init__(f"job {job.job_id} ended {job.state_name}: {job.error}", grpc.StatusCode.ABORTED)
        self.job = job


_BY_CODE = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.DATA_LOSS: DataLoss,
}


def from_rpc_error(error: grpc.RpcError) -> TesseraError:
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    return _BY_CODE.get(code, TesseraError)(message or "", code)
