"""Bad input (exit code 2): one error whose message names the problem and the fix; the exit codes."""

from serving.exit_codes import Drift

EXIT_NO_DRIFT = Drift.NO_DRIFT
EXIT_DRIFT = Drift.DRIFT
EXIT_BAD_INPUT = Drift.BAD_INPUT


class DriftInputError(Exception):
    pass


def missing_library(error: ImportError) -> str:
    return (
        f"the drift report needs {(error.name or str(error)).split('.')[0]}, which the serving image leaves out: "
        "pip install --require-hashes -r serving/requirements-drift.txt"
    )
