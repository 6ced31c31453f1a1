"""A Flink session cluster on loopback, Beam's Flink job server pointed at it, and booted SDK workers (see the
package docstring).

Memory for these 2-core, 24 GB machines: the JobManager 1 GB, each TaskManager 2.5 GB with one slot: 256 MB of
network buffers (8,192 of 32 KB; a batch result partition takes 64 of them rather than Flink's default 512, since a
Beam component's job runs many at once in one slot) and 384 MB of task
off-heap memory, which Beam's gRPC data plane to the SDK workers allocates its buffers from (what failed without
either: docs/distributed-beam.md). The job server has
1 GB of heap. The SDK workers run outside the TaskManagers' memory: in each TaskManager's worker pool, or as
processes the TaskManagers start through Beam's boot (see the package docstring).

The TaskManagers load Beam's runner from their own class path, parent-first, so that a job's stages share their
TaskManager's SDK worker (see `start`).
"""

import os
import subprocess
from pathlib import Path

from tests.beam_cluster import (
    JAVA_17_OPENS,
    PROJECT_VENV,
    BootedWorkers,
    Processes,
    WorkerPools,
    engines,
    free_port,
    http_json,
    jvm_env,
)

FLINK_CONF = """\
jobmanager.rpc.address: localhost
jobmanager.bind-host: localhost
jobmanager.rpc.port: {rpc_port}
jobmanager.memory.process.size: 1024m
taskmanager.host: localhost
taskmanager.bind-host: localhost
taskmanager.rpc.port: 0
taskmanager.data.port: 0
taskmanager.numberOfTaskSlots: {slots}
taskmanager.memory.process.size: 2560m
taskmanager.memory.task.off-heap.size: 384m
taskmanager.memory.network.min: 256mb
taskmanager.memory.network.max: 256mb
taskmanager.network.sort-shuffle.min-buffers: 64
parallelism.default: {parallelism}
rest.address: localhost
rest.bind-address: localhost
rest.port: {rest_port}
blob.server.port: 0
io.tmp.dirs: {tmp}
web.tmpdir: {tmp}
classloader.resolve-order: parent-first
"""

LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = File
appender.main.fileName = ${sys:log.file}
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


class FlinkCluster:
    """Flink 1.16 (a JobManager, `taskmanagers` TaskManagers), Beam's Flink job server, a worker pool beside each
    TaskManager and booted workers."""

    def __init__(self, folder: Path, taskmanagers: int = 2, venv: Path = PROJECT_VENV):
        self.folder = Path(folder).resolve()
        self.taskmanagers = taskmanagers
        self.slots = 1
        self.processes = Processes(self.folder)
        self.workers = BootedWorkers(self.folder, venv)
        self.pools = WorkerPools(self.folder, venv)
        self.rest_port = self.job_port = 0

    def __enter__(self) -> "FlinkCluster":
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def parallelism(self) -> int:
        return self.taskmanagers * self.slots

    def start(self) -> None:
        home = engines.flink_home()
        self.workers.prepare(engines.boot())
        self.pools.prepare()
        classpath, main = engines.job_server_classpath("flink")
        conf, tmp = self.folder / "conf", self.folder / "tmp"
        conf.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(exist_ok=True)
        self.rest_port = free_port()
        (conf / "flink-conf.yaml").write_text(
            FLINK_CONF.format(
                rpc_port=free_port(),
                rest_port=self.rest_port,
                slots=self.slots,
                parallelism=self.parallelism,
                tmp=tmp,
            )
        )
        (conf / "log4j.properties").write_text(LOG4J)
        flink_classpath = str(home / "lib" / "*")
        # Beam's runner on each TaskManager's own class path, loaded parent-first (flink-conf.yaml): Beam's Flink
        # runner keeps a job's SDK workers from one stage to the next only when its classes come from Flink's parent
        # class loader (FlinkExecutableStageContextFactory: "Clean up context immediately if its class is not loaded
        # on Flink parent classloader"); from the job's own jar, every stage releases its workers and the next one
        # starts new ones. The JobManager has it too (it makes a job's input splits with Beam's classes), so a job
        # needs no jar of its own: beam_args(stage_jars=False) tells the job server to send none.
        cluster_classpath = os.pathsep.join(
            [
                flink_classpath,
                *(
                    str(jar)
                    for jar in sorted(Path(classpath.split(os.pathsep)[0]).parent.glob("*.jar"))
                    if not jar.name.startswith(("flink-", "scala"))
                ),
            ]
        )
        jobmanager = self._jvm("jobmanager", home, conf, "GET_JM_RESOURCE_PARAMS")
        self.processes.start(
            "jobmanager",
            jobmanager
            + ["-cp", cluster_classpath, "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint"]
            + ["--configDir", str(conf)]
            + self._dynamic(home, conf, "GET_JM_RESOURCE_PARAMS"),
        )
        names = [f"taskmanager-{n}" for n in range(1, self.taskmanagers + 1)]
        self.pools.start(self.processes, names)
        self.processes.wait_until("jobmanager", lambda: http_json(self.rest("overview")), "no REST API")
        for name in names:
            self.processes.start(
                name,
                self._jvm(name, home, conf, "GET_TM_RESOURCE_PARAMS")
                + ["-cp", cluster_classpath, "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"]
                + ["--configDir", str(conf)]
                + self._dynamic(home, conf, "GET_TM_RESOURCE_PARAMS"),
                env={**jvm_env(), **self.pools.env_of(name)},
            )
        self.processes.wait_until(
            "jobmanager",
            lambda: http_json(self.rest("overview"))["taskmanagers"] == self.taskmanagers,
            f"fewer than {self.taskmanagers} TaskManagers registered",
        )
        self.job_port = free_port()
        self.processes.start(
            "job-server",
            [
                "java",
                *JAVA_17_OPENS,
                "-Xmx1g",
                "-cp",
                os.pathsep.join([classpath, str(engines.staging_nothing_jar())]),
                main,
            ]
            + [f"--flink-master=localhost:{self.rest_port}", f"--job-port={self.job_port}"]
            + [f"--artifact-port={free_port()}", "--expansion-port=0", f"--artifacts-dir={self.folder / 'artifacts'}"],
        )
        self.processes.wait_for_port("job-server", self.job_port)

    def _bash_java_utils(self, home: Path, conf: Path, command: str) -> list[str]:
        """What Flink's start scripts ask BashJavaUtils for: the JVM's memory flags, then the dynamic properties."""
        proc = subprocess.run(
            ["java", "-cp", f"{home / 'bin' / 'bash-java-utils.jar'}{os.pathsep}{home / 'lib' / '*'}"]
            + ["org.apache.flink.runtime.util.bash.BashJavaUtils", command, "--configDir", str(conf)],
            capture_output=True,
            text=True,
            check=True,
        )
        prefix = "BASH_JAVA_UTILS_EXEC_RESULT:"
        return [line[len(prefix) :] for line in proc.stdout.splitlines() if line.startswith(prefix)]

    def _jvm(self, name: str, home: Path, conf: Path, command: str) -> list[str]:
        memory = self._bash_java_utils(home, conf, command)[0].split()
        log = [
            f"-Dlog.file={self.folder / (name + '-flink.log')}",
            f"-Dlog4j.configurationFile=file:{conf}/log4j.properties",
        ]
        return ["java", *JAVA_17_OPENS, *memory, *log]

    def _dynamic(self, home: Path, conf: Path, command: str) -> list[str]:
        return self._bash_java_utils(home, conf, command)[-1].split()

    def rest(self, path: str) -> str:
        return f"http://localhost:{self.rest_port}/{path}"

    def beam_args(self, workers: str = "pool", stage_jars: bool = False) -> list[str]:
        """The pipeline's Beam arguments for a job on this cluster, at the cluster's parallelism. workers: "pool",
        each TaskManager's worker pool, whose environment has the project (run with --beam-workers-installed); or
        "boot", a fresh container through Beam's boot for each worker, installing what the job stages. stage_jars:
        the job server sends each job its class path's jars, as by default (the cluster's own class path has them:
        by default none is sent, engines.STAGING_NOTHING)."""
        return [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{self.job_port}",
            *(self.pools if workers == "pool" else self.workers).beam_args(),
            f"--parallelism={self.parallelism}",
            *(() if stage_jars else (f"--pipeline_resources_detector_factory_class={engines.STAGING_NOTHING}",)),
        ]

    def jobs(self) -> list[dict]:
        """The cluster's jobs from its REST API, oldest first, each with its plan's operator descriptions."""
        jobs = sorted(http_json(self.rest("jobs/overview"))["jobs"], key=lambda job: job["start-time"])
        for job in jobs:
            plan = http_json(self.rest(f"jobs/{job['jid']}/plan"))["plan"]
            job["operators"] = [node.get("description", "") for node in plan["nodes"]]
            job["parallelism"] = max(node.get("parallelism", 0) for node in plan["nodes"])
            job["workers"] = {
                tm["taskmanager-id"]
                for node in plan["nodes"]
                for tm in http_json(self.rest(f"jobs/{job['jid']}/vertices/{node['id']}/taskmanagers"))["taskmanagers"]
            }
        return jobs

    def jvm_pids(self) -> dict[str, int]:
        return self.processes.pids()

    def log(self, name: str) -> str:
        return self.processes.log(name)

    def stop(self) -> None:
        self.processes.stop()
