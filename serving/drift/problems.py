"""Bad input (exit code 2): one error whose message names the problem and the fix; the exit codes."""

# Exit codes, as the README lists them.
EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2


class DriftInputError(Exception):
    pass


def missing_library(error: ImportError) -> str:
    return (
        f"the drift report needs {(error.name or str(error)).split('.')[0]}, which the serving image leaves out: "
        "pip install --require-hashes -r serving/requirements-drift.txt"
    )
