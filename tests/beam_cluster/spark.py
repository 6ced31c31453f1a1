"""A Spark standalone cluster on loopback (a master, two workers of one core), Beam's Spark job server pointed at it,
a worker pool beside each Spark worker and booted SDK workers (see the package docstring).

Each Beam job is a Spark application whose driver is the job server's JVM; its event log (written under the
cluster's folder) is how `jobs` reads what ran where once the application is gone. Memory: the master 512 MB, each
worker lends its executor 2 GB, the job server (the driver) 2 GB of heap. Spark 3.2 predates Java 17, so every JVM
gets the same --add-opens as Flink's. As on Flink, a job carries no jar: the executors have Beam's runner on their
class path (docs/distributed-beam.md, "Jars").
"""

import json
import os
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


class SparkCluster:
    """Spark 3.2 (a master, `workers` workers of one core each), Beam's Spark job server, a worker pool beside each
    worker and booted SDK workers."""

    def __init__(self, folder: Path, workers: int = 2, venv: Path = PROJECT_VENV):
        self.folder = Path(folder).resolve()
        self.worker_count = workers
        self.processes = Processes(self.folder)
        self.workers = BootedWorkers(self.folder, venv)
        self.pools = WorkerPools(self.folder, venv)
        self.master_port = self.ui_port = self.job_port = 0

    def __enter__(self) -> "SparkCluster":
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
        return self.worker_count

    @property
    def events(self) -> Path:
        return self.folder / "events"

    def start(self) -> None:
        home = engines.spark_home()
        classpath, main = engines.job_server_classpath("spark")
        beam_jars = classpath.split(os.pathsep)[0]  # the job server's own jars (the rest are Spark's)
        self.workers.prepare(engines.boot())
        self.pools.prepare()
        self.events.mkdir(parents=True, exist_ok=True)
        env = {**jvm_env(), "SPARK_HOME": str(home), "SPARK_SCALA_VERSION": "2.12"}
        spark_classpath = str(home / "jars" / "*")
        self.master_port, self.ui_port = free_port(), free_port()
        java = ["java", *JAVA_17_OPENS]
        self.processes.start(
            "master",
            java
            + ["-Xmx512m", "-cp", spark_classpath, "org.apache.spark.deploy.master.Master"]
            + ["--host", "localhost", "--port", str(self.master_port), "--webui-port", str(self.ui_port)],
            env=env,
        )
        self.processes.wait_until("master", lambda: http_json(self.ui("json/")), "no web UI")
        names = [f"worker-{n}" for n in range(1, self.worker_count + 1)]
        self.pools.start(self.processes, names)
        for name in names:
            work = self.folder / name
            work.mkdir(exist_ok=True)
            # The executors this worker starts inherit its environment, and with it its pool.
            self.processes.start(
                name,
                java
                + ["-Xmx512m", "-cp", spark_classpath, "org.apache.spark.deploy.worker.Worker"]
                + ["--host", "localhost", "--cores", "1", "--memory", "2g", "--webui-port", str(free_port())]
                + ["--work-dir", str(work), self.master_url],
                # Beam's runner on the executors' class path, after Spark's own jars (the launcher appends
                # SPARK_DIST_CLASSPATH), so that a job need not ship it (beam_args's stage_jars).
                env={**env, **self.pools.env_of(name), "SPARK_DIST_CLASSPATH": beam_jars},
            )
        self.processes.wait_until(
            "master",
            lambda: len(http_json(self.ui("json/"))["workers"]) == self.worker_count,
            f"fewer than {self.worker_count} workers registered",
        )
        self.job_port = free_port()
        opens = " ".join(JAVA_17_OPENS)
        conf = {
            "spark.executor.memory": "1g",
            "spark.executor.extraJavaOptions": opens,
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": f"file://{self.events}",
            "spark.default.parallelism": str(self.parallelism),
            "spark.ui.enabled": "false",
            "spark.local.dir": str(self.folder / "tmp"),
        }
        self.processes.start(
            "job-server",
            java
            + ["-Xmx2g", *(f"-D{k}={v}" for k, v in conf.items())]
            + ["-cp", os.pathsep.join([classpath, str(engines.staging_nothing_jar())]), main]
            + [f"--spark-master-url={self.master_url}", f"--job-port={self.job_port}"]
            + [f"--artifact-port={free_port()}", "--expansion-port=0", f"--artifacts-dir={self.folder / 'artifacts'}"],
            env=env,
        )
        self.processes.wait_for_port("job-server", self.job_port)

    @property
    def master_url(self) -> str:
        return f"spark://localhost:{self.master_port}"

    def ui(self, path: str) -> str:
        return f"http://localhost:{self.ui_port}/{path}"

    def beam_args(self, workers: str = "pool", stage_jars: bool = False) -> list[str]:
        """The pipeline's Beam arguments for a job on this cluster; workers and stage_jars as FlinkCluster.beam_args's
        (by default no jar is sent: the executors have Beam's runner on their class path)."""
        chosen = self.pools if workers == "pool" else self.workers
        return [
            "--runner=PortableRunner",
            f"--job_endpoint=localhost:{self.job_port}",
            *chosen.beam_args(),
            *(() if stage_jars else (f"--pipeline_resources_detector_factory_class={engines.STAGING_NOTHING}",)),
        ]

    def jobs(self) -> list[dict]:
        """Each Beam job's Spark application, oldest first, from its event log: its state (FINISHED when every Spark
        job of it succeeded and it ended), the names of its stages' RDDs (Beam names them after its transforms),
        its parallelism (the cores of its executors) and the executors that ran its tasks."""
        apps = []
        for log in self.events.iterdir():
            if log.name.endswith(".inprogress"):
                apps.append({"name": log.name, "state": "RUNNING", "operators": [], "workers": set(), "start": 1e300})
                continue
            app = {"name": log.name, "operators": [], "workers": set(), "parallelism": 0, "start": 0}
            results, ended = [], False
            for line in log.read_text().splitlines():
                event = json.loads(line)
                kind = event["Event"]
                if kind == "SparkListenerApplicationStart":
                    app["start"] = event["Timestamp"]
                elif kind == "SparkListenerApplicationEnd":
                    ended = True
                elif kind == "SparkListenerExecutorAdded":
                    app["parallelism"] += event["Executor Info"]["Total Cores"]
                elif kind == "SparkListenerStageSubmitted":
                    stage = event["Stage Info"]
                    app["operators"] += [stage["Stage Name"]] + [rdd["Name"] for rdd in stage["RDD Info"]]
                elif kind == "SparkListenerTaskEnd":
                    app["workers"].add(event["Task Info"]["Executor ID"])
                elif kind == "SparkListenerJobEnd":
                    results.append(event["Job Result"]["Result"])
            app["state"] = "FINISHED" if ended and results and set(results) == {"JobSucceeded"} else "FAILED"
            apps.append(app)
        return sorted(apps, key=lambda app: app.get("start", 0))

    def jvm_pids(self) -> dict[str, int]:
        return self.processes.pids()

    def log(self, name: str) -> str:
        return self.processes.log(name)

    def stop(self) -> None:
        self.processes.stop()
