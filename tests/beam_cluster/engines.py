"""The real engines the cluster tests run on, fetched from the registries into a cache outside the repository.

`python -m tests.beam_cluster fetch` (make engines) fetches, once per machine, into ENGINES
($FRAUD_PIPELINE_ENGINES, or ~/.cache/fraud-pipeline/engines):

- Beam's SDK boot (`boot`): the Go program every Beam Python SDK container starts with, built by `go install` from the
  Go module proxy at the Beam release the lock pins (checked against the Go checksum database);
- Apache Flink (`flink_home`): the distribution's jars (flink-dist and its lib/) from PyPI's apache-flink-libraries
  source archive, unpacked and never installed (SHA-256 pinned below);
- Apache Spark (`spark_home`): Spark's jars from PyPI's pyspark source archive, unpacked and never installed;
- Beam's job servers for both (`job_server_classpath`): the Maven Central jars of Beam's Flink and Spark runners and
  the job service, resolved by Maven from their POMs (Maven checks each jar's checksum).

Versions. Beam publishes each job server as one shaded jar (beam-runners-flink-1.16-job-server and so on); the
Maven registry these machines reach serves none of them at any version, and at Beam 2.57-2.61 it serves the Flink
runner but not beam-runners-java-job-service, which the job server's main class lives in. BEAM_JAVA is therefore
the newest release at which the runners and the job service are all served, and the job server is the runner's own
jars and their dependencies on a class path, as the shaded jar would carry them. The pipeline's Python SDK stays at
the lock's Beam 2.59.0: the job server and the SDK talk the portable API, and the SDK workers run 2.59.0. The Flink
runner at BEAM_JAVA is built for Flink 1.16, the Spark runner for Spark 3.2.
"""

import hashlib
import os
import shutil
import subprocess
import tarfile
import urllib.request
from pathlib import Path

ENGINES = Path(
    os.environ.get("FRAUD_PIPELINE_ENGINES")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fraud-pipeline" / "engines"
)

BEAM_SDK = "2.59.0"  # requirements.lock's apache-beam: the boot must be of the SDK's release
BOOT_MODULE = "github.com/apache/beam/sdks/v2/python/container"
BEAM_JAVA = "2.56.0"  # the job servers' Beam release (module docstring)
FLINK = "1.16.3"
SPARK = "3.2.2"
SLF4J = "1.7.30"  # the job servers' slf4j-api
# PyPI source archives: (name, version) -> SHA-256, as PyPI lists them.
ARCHIVES = {
    ("apache-flink-libraries", FLINK): "d15df4185e9c507836b031879b64e18f68955dd7e90cd7d39b450513ed64ebbe",
    ("pyspark", SPARK): "5455214cf0b83d4a184cda25ca3b0812481915353b180cf7d7ac227728a4d99e",
}
JOB_SERVERS = {
    "flink": {
        # slf4j's JDK binding gives the job server a log (Spark's jars bring their own binding, and a bridge that
        # would send the JDK's log back to slf4j in a loop).
        "artifacts": [f"org.apache.beam:beam-runners-flink-1.16:{BEAM_JAVA}", f"org.slf4j:slf4j-jdk14:{SLF4J}"],
        "main": "org.apache.beam.runners.flink.FlinkJobServerDriver",
    },
    "spark": {
        # Beam's Jackson (2.14) with Spark's Scala module at the same version, as Beam's own build forces it: Spark
        # 3.2's (2.12) refuses to load beside Beam's Jackson.
        "artifacts": [
            f"org.apache.beam:beam-runners-spark-3:{BEAM_JAVA}",
            "com.fasterxml.jackson.module:jackson-module-scala_2.12:2.14.1",
        ],
        "main": "org.apache.beam.runners.spark.SparkJobServerDriver",
    },
}
COMMON = [f"org.apache.beam:beam-runners-java-job-service:{BEAM_JAVA}"]


class EngineUnavailableError(RuntimeError):
    """An engine cannot be had on this machine: the message says what is missing."""


def missing_tools(*tools: str) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def _require(*tools: str) -> None:
    absent = missing_tools(*tools)
    if absent:
        raise EngineUnavailableError(f"{', '.join(absent)} not found on PATH")


def _done(folder: Path) -> bool:
    return (folder / ".complete").exists()


def _finish(staging: Path, folder: Path) -> Path:
    (staging / ".complete").write_text("")
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)
    return folder


def boot() -> Path:
    """Beam's Go boot for Python SDK workers, built from the module proxy."""
    folder = ENGINES / f"beam-boot-{BEAM_SDK}"
    binary = folder / "bin" / "container"
    if _done(folder):
        return binary
    _require("go")
    staging = ENGINES / f".beam-boot-{BEAM_SDK}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    env = {**os.environ, "GOBIN": str(staging / "bin"), "GOFLAGS": "-mod=mod", "CGO_ENABLED": "0"}
    env.setdefault("GOPATH", str(ENGINES / "go"))
    _run(["go", "install", f"{BOOT_MODULE}@v{BEAM_SDK}"], env=env)
    return _finish(staging, folder) / "bin" / "container"


def _pypi_archive(name: str, version: str) -> Path:
    """A source archive from PyPI, checked against its pinned SHA-256."""
    import json

    downloads = ENGINES / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{version}.tar.gz"
    path = downloads / filename
    expected = ARCHIVES[(name, version)]
    if not path.exists() or _sha256(path) != expected:
        index = os.environ.get("FRAUD_PIPELINE_PYPI", "https://pypi.org/simple")
        request = urllib.request.Request(f"{index}/{name}/", headers={"Accept": "application/vnd.pypi.simple.v1+json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            files = json.load(response)["files"]
        (url,) = [f["url"] for f in files if f["filename"] == filename]
        partial = path.with_suffix(".partial")
        with urllib.request.urlopen(url, timeout=600) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        partial.rename(path)
    actual = _sha256(path)
    if actual != expected:
        raise EngineUnavailableError(f"{filename}: SHA-256 {actual}, pinned {expected}")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unpack(archive: Path, members: dict[str, str], staging: Path) -> None:
    """Unpacks the archive's files under each prefix (key) into staging / value, flat, regular files only."""
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.isfile():
                continue
            for prefix, target in members.items():
                if member.name.startswith(prefix) and "/" not in member.name[len(prefix) :]:
                    out = staging / target / Path(member.name).name
                    out.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(out, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)


def flink_home() -> Path:
    """Flink's distribution: lib/ (flink-dist and the rest of the distribution's lib) and bin/bash-java-utils.jar."""
    folder = ENGINES / f"flink-{FLINK}"
    if _done(folder):
        return folder
    archive = _pypi_archive("apache-flink-libraries", FLINK)
    staging = ENGINES / f".flink-{FLINK}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    root = f"apache-flink-libraries-{FLINK}/deps/"
    _unpack(archive, {root + "lib/": "lib", root + "bin/": "bin"}, staging)
    if not list((staging / "lib").glob("flink-dist-*.jar")):
        raise EngineUnavailableError(f"{archive.name} has no flink-dist jar")
    return _finish(staging, folder)


def spark_home() -> Path:
    """Spark's jars/ from the pyspark source archive (it carries the whole distribution's jars)."""
    folder = ENGINES / f"spark-{SPARK}"
    if _done(folder):
        return folder
    archive = _pypi_archive("pyspark", SPARK)
    staging = ENGINES / f".spark-{SPARK}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    _unpack(archive, {f"pyspark-{SPARK}/deps/jars/": "jars"}, staging)
    if not list((staging / "jars").glob("spark-core_*.jar")):
        raise EngineUnavailableError(f"{archive.name} has no spark-core jar")
    # Spark's launcher takes a folder with RELEASE for a distribution, whose jars are in jars/ (the workers build
    # their executors' class path that way).
    (staging / "RELEASE").write_text(f"Spark {SPARK} (jars from PyPI's pyspark-{SPARK}.tar.gz)\n")
    return _finish(staging, folder)


POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.fraud-pipeline</groupId><artifactId>{name}-job-server</artifactId><version>{version}</version>
  <dependencies>
{dependencies}
  </dependencies>
</project>
"""


def job_server_classpath(engine: str) -> tuple[str, str]:
    """(class path, main class) of Beam's job server for engine ('flink' or 'spark')."""
    spec = JOB_SERVERS[engine]
    folder = ENGINES / f"beam-{engine}-job-server-{BEAM_JAVA}"
    if not _done(folder):
        _require("java", "mvn")
        staging = ENGINES / f".beam-{engine}-job-server-{BEAM_JAVA}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        dependencies = []
        for coordinate in spec["artifacts"] + COMMON:
            group, artifact, version = coordinate.split(":")
            dependencies.append(
                f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                f"<version>{version}</version></dependency>"
            )
        (staging / "pom.xml").write_text(
            POM.format(name=engine, version=BEAM_JAVA, dependencies="\n".join(dependencies))
        )
        _run(
            ["mvn", "-B", "-q", f"-Dmaven.repo.local={ENGINES / 'm2'}", "dependency:copy-dependencies"]
            + ["-DoutputDirectory=lib", "-DincludeScope=runtime"],
            cwd=staging,
        )
        _finish(staging, folder)
    classpath = [str(folder / "lib" / "*")]
    if engine == "spark":  # the runner's Spark dependencies are 'provided': the distribution's jars
        classpath.append(str(spark_home() / "jars" / "*"))
    return os.pathsep.join(classpath), spec["main"]


# A job server's class path addition (`staging_nothing_jar`): a resources detector that finds nothing to stage.
# Beam's Flink job server sends each job the jars its own class path holds (PipelineResources, through Beam's
# pipelineResourcesDetectorFactoryClass option, default ClasspathScanningResourcesDetectorFactory): all of them,
# uploaded to the JobManager before each job starts (docs/benchmarks.md, "Distributed Beam"). On a cluster whose
# JobManager and TaskManagers have Beam's runner on their own class path (tests.beam_cluster.flink), nothing needs
# sending.
STAGING_NOTHING = "local.fraud_pipeline.StageNothing"
STAGING_NOTHING_SOURCE = """\
package local.fraud_pipeline;

import java.util.Collections;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/** Finds no resources to stage: the cluster's own class path has the runner (tests/beam_cluster/engines.py). */
public class StageNothing implements PipelineResourcesDetector.Factory {
  /** What Beam's option calls to make the factory (as its own ClasspathScanningResourcesDetectorFactory has). */
  public static StageNothing create() {
    return new StageNothing();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return classLoader -> {
      // One line a job in the job server's log, which the engines tests count.
      System.err.println("StageNothing: no jar staged for this job");
      return Collections.emptyList();
    };
  }
}
"""


def staging_nothing_jar(engine: str = "flink") -> Path:
    """STAGING_NOTHING compiled against the job server's Beam, as a jar (built once, with javac from the JDK)."""
    folder = ENGINES / f"stage-nothing-{BEAM_JAVA}-{hashlib.sha256(STAGING_NOTHING_SOURCE.encode()).hexdigest()[:12]}"
    jar = folder / "stage-nothing.jar"
    if _done(folder):
        return jar
    _require("javac", "jar")
    classpath = job_server_classpath(engine)[0]
    staging = folder.with_name(f".{folder.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    source = staging / "src" / "local" / "fraud_pipeline" / "StageNothing.java"
    source.parent.mkdir(parents=True)
    source.write_text(STAGING_NOTHING_SOURCE)
    _run(["javac", "--release", "11", "-cp", classpath, "-d", str(staging / "classes"), str(source)])
    _run(["jar", "cf", str(staging / jar.name), "-C", str(staging / "classes"), "."])
    shutil.rmtree(staging / "src")
    shutil.rmtree(staging / "classes")
    return _finish(staging, folder) / jar.name


def _run(command: list[str], **kwargs) -> None:
    proc = subprocess.run(command, capture_output=True, text=True, **kwargs)
    if proc.returncode != 0:
        raise EngineUnavailableError(
            f"{' '.join(command)} failed ({proc.returncode}): {(proc.stdout + proc.stderr)[-3000:]}"
        )


def fetch(engines: tuple[str, ...] = ("flink", "spark")) -> dict[str, str]:
    """Fetches everything the named engines need; returns what was fetched, by part."""
    parts = {"boot": str(boot())}
    if "flink" in engines:
        parts["flink"] = str(flink_home())
        parts["flink job server"] = job_server_classpath("flink")[0]
        parts["stage nothing"] = str(staging_nothing_jar("flink"))
    if "spark" in engines:
        parts["spark"] = str(spark_home())
        parts["spark job server"] = job_server_classpath("spark")[0]
    return parts


def unavailable(engine: str) -> str:
    """Why engine's tests cannot run here ('' if they can): tools absent or the cache not fetched."""
    absent = missing_tools("java", *(() if _done(ENGINES / f"beam-boot-{BEAM_SDK}") else ("go",)))
    if absent:
        return f"{', '.join(absent)} not found on PATH (make engines fetches the rest)"
    try:
        fetch((engine,))
    except (EngineUnavailableError, OSError) as e:
        return f"{engine} could not be fetched: {e}"
    return ""
