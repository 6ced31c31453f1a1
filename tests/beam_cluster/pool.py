"""`python pool.py client --id=ID --provision_endpoint=URL [...]`: the PROCESS environment's command that gets an SDK
worker from the TaskManager's own worker pool (`pipeline.runners.worker_pool`, started once per cluster in the image
environment: the package docstring).

The engine runs it with the arguments it gives boot in a container, from the TaskManager's environment, where
BEAM_WORKER_POOL names that TaskManager's pool. It asks the runner's provision service for the control, logging and
artifact endpoints (Beam 2.56's Flink and Spark runners pass only --id and --provision_endpoint), asks the pool to
start the worker with them, stays alive while the runner keeps the environment, and asks the pool to stop it on
SIGTERM. It imports only gRPC (Beam's generated messages would import most of Beam first), so the two requests
are encoded here: the unit tests check the bytes against Beam's own messages.

Why a pool per TaskManager, reached through PROCESS, rather than Beam's EXTERNAL environment: EXTERNAL takes one
address for the whole job, and each TaskManager numbers its workers from `1-1`; a pool shared by two TaskManagers
would also run both TaskManagers' work in one interpreter (one GIL). On a real cluster the pool is a sidecar of each
TaskManager on its own localhost, and EXTERNAL reaches it directly.
"""

import os
import signal
import sys

POOL_ENV = "BEAM_WORKER_POOL"
_POOL_SERVICE = "/org.apache.beam.model.fn_execution.v1.BeamFnExternalWorkerPool/"
_PROVISION = "/org.apache.beam.model.fn_execution.v1.ProvisionService/GetProvisionInfo"
# -- protobuf wire format, for the client's two requests and one response --------------------------------------------


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2): strings and messages."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _endpoint(url: str) -> bytes:
    return _field(1, url.encode())  # ApiServiceDescriptor.url


def fields(data: bytes) -> dict[int, list]:
    """A message's fields by number: bytes for length-delimited ones, ints for the others."""
    found: dict[int, list] = {}
    i = 0

    def varint() -> int:
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            value = varint()
        elif wire == 2:
            size = varint()
            value, i = data[i : i + size], i + size
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = int.from_bytes(data[i : i + size], "little"), i + size
        else:
            raise ValueError(f"unexpected wire type {wire}")
        found.setdefault(number, []).append(value)
    return found


def start_request(worker_id: str, control: str, logging: str, artifact: str, provision: str) -> bytes:
    """StartWorkerRequest: worker_id 1, control_endpoint 2, logging_endpoint 3, artifact_endpoint 4,
    provision_endpoint 5."""
    return b"".join(
        [
            _field(1, worker_id.encode()),
            _field(2, _endpoint(control)),
            _field(3, _endpoint(logging)),
            _field(4, _endpoint(artifact)),
            _field(5, _endpoint(provision)),
        ]
    )


def stop_request(worker_id: str) -> bytes:
    return _field(1, worker_id.encode())  # StopWorkerRequest.worker_id


def response_error(data: bytes) -> str:
    """StartWorkerResponse / StopWorkerResponse: error 1, empty when it went well."""
    return b"".join(fields(data).get(1, [])).decode(errors="replace")


def endpoints(provision_info_response: bytes) -> dict[str, str]:
    """The control, logging and artifact endpoints' URLs from a GetProvisionInfoResponse (info 1: ProvisionInfo,
    whose logging_endpoint is 8, artifact_endpoint 9, control_endpoint 10)."""
    (info,) = fields(provision_info_response)[1]
    info_fields = fields(info)
    return {
        name: fields(info_fields[number][0])[1][0].decode()
        for name, number in (("logging", 8), ("artifact", 9), ("control", 10))
    }


# -- the PROCESS command ---------------------------------------------------------------------------------------------


def client(argv: list[str]) -> int:
    stop_signals = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)  # before gRPC's threads start, so they inherit it
    import grpc

    given = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    worker_id, provision = given["id"], given["provision_endpoint"]
    metadata = (("worker_id", worker_id),)
    with grpc.insecure_channel(provision) as channel:
        info = channel.unary_unary(_PROVISION)(b"", metadata=metadata, timeout=120, wait_for_ready=True)
    urls = endpoints(info)
    pool = grpc.insecure_channel(os.environ[POOL_ENV])
    start = start_request(worker_id, urls["control"], urls["logging"], urls["artifact"], provision)
    error = response_error(pool.unary_unary(_POOL_SERVICE + "StartWorker")(start, timeout=120, wait_for_ready=True))
    if error:
        print(f"the worker pool at {os.environ[POOL_ENV]} could not start {worker_id}: {error}", file=sys.stderr)
        return 1
    signal.sigwait(stop_signals)
    # A thread worker ends when the runner closes its control stream; the request is what a pool of processes needs.
    pool.unary_unary(_POOL_SERVICE + "StopWorker")(stop_request(worker_id), timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(client(sys.argv[1:]))
