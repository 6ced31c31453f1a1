"""Beam's Python portable job service, with each job run on as many SDK workers as its --direct_num_workers asks.

The service (apache_beam.runners.portability.local_job_service_main) runs jobs on Beam's FnApiRunner, which
starts one SDK worker per environment unless told otherwise, and that is only read from the options when the
runner is used in-process. Here the job's own --direct_num_workers sets it, so a job can ask for two workers as
it would ask a Flink cluster for a parallelism of two; the runner then splits each stage's input between them.
"""

import logging
import signal
import sys

from apache_beam.options.pipeline_options import DirectOptions
from apache_beam.runners.portability import local_job_service_main
from apache_beam.runners.portability.fn_api_runner import fn_runner


class _Runner(fn_runner.FnApiRunner):
    def run_via_runner_api(self, pipeline_proto, options):
        # The job's options arrive as strings.
        self._num_workers = int(options.view_as(DirectOptions).direct_num_workers or 1)
        return super().run_via_runner_api(pipeline_proto, options)


if __name__ == "__main__":
    fn_runner.FnApiRunner = _Runner  # what local_job_service instantiates per job
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    logging.basicConfig(level=logging.INFO)
    local_job_service_main.run(sys.argv[1:])
