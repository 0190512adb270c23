"""Start-up: where the model comes from, any ONNX regressor works, bad models and settings stop cleanly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import DEMO_MODEL, SAMPLE_ROWS
from tests.serving.models import linear_regressor
from tests.serving.server import REPO, base_env, free_port, running_server


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "serving", *args],
        cwd=REPO,
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_python(script: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=base_env(), capture_output=True, text=True, timeout=60
    )


def test_missing_model_stops_with_one_line(tmp_path: Path) -> None:
    result = run_cli("serve", "--model", str(tmp_path / "absent.onnx"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"error: model not found: {tmp_path / 'absent.onnx'} does not exist"]


def test_invalid_onnx_stops_with_one_line(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"this is not a protobuf")
    result = run_cli("serve", "--model", str(broken))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: not a valid ONNX model: {broken}")


def test_a_pickle_given_as_the_model_is_pointed_to_the_importer(tmp_path: Path) -> None:
    pickled = tmp_path / "model.joblib"
    pickled.write_bytes(b"\x80\x04\x95 a joblib file, not ONNX")
    result = run_cli("serve", "--model", str(pickled))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: not a valid ONNX model: {pickled}")
    assert "python -m importer MODEL -o model.onnx" in line


def test_directory_with_several_models_is_ambiguous(tmp_path: Path) -> None:
    linear_regressor(tmp_path / "a" / "one.onnx", [1.0], 0.0)
    linear_regressor(tmp_path / "b" / "two.onnx", [1.0], 0.0)
    result = run_cli("serve", "--model", str(tmp_path))
    assert result.returncode == 1
    assert "ambiguous model" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--port", "70000"], {}, "SERVING_PORT (--port)"),
        (["--workers", "zero"], {}, "SERVING_WORKERS (--workers)"),
        ([], {"SERVING_API_KEYS": "short"}, "API key #1 is shorter than 16 characters"),
        ([], {"SERVING_MAX_ROWS": "0"}, "SERVING_MAX_ROWS"),
        ([], {"SERVING_LOG_LEVEL": "loud"}, "SERVING_LOG_LEVEL"),
    ],
)
def test_bad_settings_name_the_setting(args: list[str], env: dict[str, str], message: str) -> None:
    result = run_cli("serve", *args, env=env)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_any_onnx_regressor_with_a_2d_float_input(tmp_path: Path) -> None:
    model = linear_regressor(tmp_path / "price.onnx", [2.0, -1.0, 0.5], 10.0)
    with running_server(tmp_path, args=["--model", str(model)]) as server:
        body = httpx.post(server.url + "/score", json={"data": [[1, 2, 4], [0, 0, 0]]}).json()
        assert body["predictions"] == pytest.approx([12.0, 10.0])
        proba = httpx.post(server.url + "/score", json={"data": [[1, 2, 4]], "method": "predict_proba"})
        assert proba.status_code == 400
        assert "not a classifier" in proba.json()["error"]
        # Name and version fall back to the file name and "1" without metadata.
        assert httpx.get(server.url + "/v2/models/price").json()["versions"] == ["1"]
        infer = {"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 4]}]}
        outputs = httpx.post(server.url + "/v2/models/price/infer", json=infer).json()["outputs"]
        assert outputs == [{"name": "y", "datatype": "FP32", "shape": [1, 1], "data": [12.0]}]


def test_sagemaker_model_dir_and_serve_command(tmp_path: Path) -> None:
    """SageMaker: `serve`, port from flags, model from SM_MODEL_DIR (what /opt/ml/model holds)."""
    model_dir = tmp_path / "opt-ml-model"
    linear_regressor(model_dir / "model.onnx", [1.0, 1.0], 0.0, {"name": "summer", "version": "3"})
    with running_server(tmp_path, env={"SM_MODEL_DIR": str(model_dir)}) as server:
        assert httpx.get(server.url + "/ping").status_code == 200
        response = httpx.post(server.url + "/invocations", content="1,2\n3,4\n", headers={"Content-Type": "text/csv"})
        assert response.json() == {"predictions": [3.0, 7.0]}
        assert httpx.get(server.url + "/v2/models/summer/versions/3").status_code == 200


def test_azureml_model_dir_with_nested_layout(tmp_path: Path) -> None:
    """Azure ML mounts models as AZUREML_MODEL_DIR/<name>/<version>/<file>."""
    model_dir = tmp_path / "azureml-models"
    target = model_dir / "weather-rain" / "1" / "weather.onnx"
    target.parent.mkdir(parents=True)
    shutil.copy(DEMO_MODEL, target)
    with running_server(tmp_path, env={"AZUREML_MODEL_DIR": str(model_dir)}, command=()) as server:
        response = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS})
        assert response.status_code == 200


def test_model_name_override(tmp_path: Path) -> None:
    with running_server(tmp_path, args=["--model-name", "rain-v2"]) as server:
        assert httpx.get(server.url + "/v2/models/rain-v2/ready").json()["ready"] is True
        assert httpx.get(server.url + "/v2/models/weather-rain/ready").status_code == 404


def test_factory_for_other_asgi_servers_loads_the_model_in_the_background(tmp_path: Path) -> None:
    """`uvicorn --factory serving.app:create_app`: live at once, ready (and scoring) once loaded."""
    from tests.serving.server import free_port

    port = free_port()
    log = (tmp_path / "uvicorn.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "serving.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=REPO,
        env=base_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "uvicorn.log").read_text()
            time.sleep(0.1)
        assert httpx.get(url + "/v2/health/live").status_code == 200
        assert httpx.post(url + "/score", json={"data": SAMPLE_ROWS}).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_invalid_key_setting_names_no_flag_that_does_not_exist() -> None:
    result = run_cli("serve", env={"SERVING_API_KEYS": "short"})
    assert result.stderr.strip() == "error: invalid setting SERVING_API_KEYS: API key #1 is shorter than 16 characters"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({}, "auth off: anyone who reaches the port can score"),
        ({"SERVING_API_KEYS": "primary-key-0123456789,secondary-key-0123456789"}, "auth: 2 API key(s)"),
    ],
)
def test_the_start_up_line_says_whether_callers_need_a_key(tmp_path: Path, env: dict[str, str], says: str) -> None:
    with running_server(tmp_path, env=env) as server:
        (line,) = [json.loads(x)["message"] for x in server.log().splitlines() if '"serving ' in x]
    assert line.endswith(f"worker(s); {says}"), line
    assert "0123456789" not in server.log(), "no key is ever logged"


def test_busy_port_is_one_line_and_exit_code_4(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 4
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is in use" in result.stderr
    assert "Traceback" not in result.stderr
    assert "serving weather-rain" not in result.stderr + result.stdout, "nothing announced before the port is ours"


def test_several_workers_without_a_writable_tmp_name_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    env = {"SERVING_WORKERS": "2", "SERVING_METRICS_DIR": str(missing)}
    result = run_cli("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 4
    assert f"cannot create the workers' metrics directory in {missing}" in result.stderr
    assert "SERVING_METRICS_DIR" in result.stderr
    assert "Traceback" not in result.stderr


def test_inline_budget_follows_spare_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving import worker_settings
    from serving.settings import Settings, inline_scoring_budget_us

    monkeypatch.setattr(worker_settings, "container_cpu_count", lambda: 8)
    assert inline_scoring_budget_us(Settings(workers=2)) == 500, "threads have spare cores"
    assert inline_scoring_budget_us(Settings(workers=8)) == 3000, "a core per worker: score on the loop"
    assert inline_scoring_budget_us(Settings()) == 3000, "the default worker count is the core count"
    assert inline_scoring_budget_us(Settings(workers=8, inline_scoring_budget_us=0)) == 0, "a setting wins"


def test_a_model_whose_inputs_are_neither_a_matrix_nor_columns_says_what_to_do(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, w]) for n, w in (("a", 3), ("b", 1))]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "two", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "two.onnx"
    path.write_bytes(model.SerializeToString())
    result = run_cli("serve", "--model", str(path))
    assert result.returncode == 1
    assert "input 'a' is tensor(float) with shape [None, 3]" in result.stderr
    assert "one 2-D float input of all features, or one [N, 1] input per column" in result.stderr


def test_string_labelled_classifier_gets_its_classes_from_the_graph(tmp_path: Path) -> None:
    import numpy as np
    from onnx import helper
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    from serving.runtime import ModelRuntime

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 3)).astype(np.float32)
    y = np.array(["dry", "rain", "snow"])[np.argmax(x, axis=1)]
    classifier = LogisticRegression().fit(x, y)
    model = to_onnx(classifier, x[:1], options={id(classifier): {"zipmap": False}}, target_opset=17)
    plain = tmp_path / "plain.onnx"
    plain.write_bytes(model.SerializeToString())
    runtime = ModelRuntime(plain)
    # No class_labels metadata (exported by hand): the classifier operator's classlabels_strings, never [0, 1, 2].
    assert runtime.classes == ["dry", "rain", "snow"]
    assert runtime.predict(x[:2]).labels.tolist() == classifier.predict(x[:2]).tolist()
    helper.set_model_props(model, {"class_labels": json.dumps(classifier.classes_.tolist())})
    labelled = tmp_path / "labelled.onnx"
    labelled.write_bytes(model.SerializeToString())
    assert ModelRuntime(labelled).classes == ["dry", "rain", "snow"]


def _children(parent: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{parent}/task/{parent}/children").read_text().split()]


def _workers_of(parent: int) -> set[int]:
    """The server's workers: forked (the parent's command line) or spawned (multiprocessing's), not its
    resource tracker."""
    return {pid for pid in _children(parent) if b"resource_tracker" not in Path(f"/proc/{pid}/cmdline").read_bytes()}


def _wait_for(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_bad_model_with_more_workers_than_cpus_stops_them_all_unheard(tmp_path: Path) -> None:
    # The first workers start while the model is checked; a bad model stops them before they load it.
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"this is not a protobuf")
    port = free_port()
    result = run_cli("serve", "--model", str(broken), "--workers", "4", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: not a valid ONNX model: {broken}")
    assert result.stdout == "", "no worker and no supervisor said anything"
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # nothing holds the port any more
        again.listen()


def test_a_bad_model_is_said_before_a_busy_port_with_several_workers(tmp_path: Path) -> None:
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"this is not a protobuf")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--model", str(broken), "--workers", "2", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: not a valid ONNX model")


def test_more_workers_than_cpus_all_come_up_and_a_dead_one_is_replaced(tmp_path: Path) -> None:
    # At most one worker a CPU starts at a time; the others start as those come up.
    from serving.worker_settings import container_cpu_count

    workers = max(4, 2 * container_cpu_count())

    def started() -> int:
        return server.log().count("Application startup complete")

    with running_server(tmp_path, args=["--workers", str(workers)]) as server:
        _wait_for(lambda: started() == workers)
        pids = _workers_of(server.process.pid)
        assert len(pids) == workers
        victim = min(pids)
        os.kill(victim, signal.SIGKILL)
        _wait_for(lambda: started() == workers + 1)
        now = _workers_of(server.process.pid)
        assert victim not in now
        assert len(now) == workers
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code == 200


def _maps_pydantic(pid: int) -> bool:
    return "pydantic_core" in Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_no_serving_process_imports_pydantic(tmp_path: Path, workers: int) -> None:
    # The settings are validated in a forked child (serving/settings_child.py) while the server imports the
    # rest: about 0.4 s and 12 MB a process (bench/README.md). The workers take the values it handed back.
    with running_server(tmp_path, args=["--workers", str(workers)], env={"SERVING_API_KEYS": "k" * 20}) as server:
        if workers > 1:
            _wait_for(lambda: server.log().count("Application startup complete") == workers)
        processes = [server.process.pid, *_workers_of(server.process.pid)]
        assert len(processes) == (1 if workers == 1 else 1 + workers)
        assert not [pid for pid in processes if _maps_pydantic(pid)]
        key = {"authorization": "Bearer " + "k" * 20}
        scored = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers=key)
        assert scored.status_code == 200
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code == 401
        assert httpx.get(server.url + "/docs").status_code == 200  # FastAPI's pages still build (with pydantic)


@pytest.mark.parametrize(
    ("cpus", "variable", "serves_with"),
    [
        # More workers expected (one a CPU) than the settings name: preloaded for forking, serves alone.
        (2, "1", 1),
        # One expected (one CPU), two named: onnxruntime is imported already, so the workers are spawned.
        (1, "2", 2),
    ],
)
def test_the_worker_count_the_settings_name_wins_over_the_early_guess(
    tmp_path: Path, cpus: int, variable: str, serves_with: int
) -> None:
    # The server guesses the count from SERVING_WORKERS before the settings are validated; pydantic-settings
    # also reads the variable in lower case, which the guess does not.
    available = sorted(os.sched_getaffinity(0))
    if len(available) < cpus:
        pytest.skip(f"needs {cpus} CPUs")
    with running_server(tmp_path, env={"serving_workers": variable}, cpus=set(available[:cpus])) as server:
        _wait_for(lambda: f"with {serves_with} worker(s)" in server.log())
        if serves_with > 1:
            _wait_for(lambda: server.log().count("Application startup complete") == serves_with)
        # Only the workers are left (the check's child is gone): none with one worker.
        assert len(_workers_of(server.process.pid)) == (0 if serves_with == 1 else serves_with)
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code == 200


def test_invalid_settings_with_several_workers_are_one_line_and_exit_code_2() -> None:
    # The supervisor preloads for its workers while the settings are validated; invalid ones stop it there.
    result = run_cli("serve", "--workers", "4", "--port", "70000")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: invalid setting SERVING_PORT (--port): Input should be less than or equal to 65535"
    ]
    assert result.stdout == ""


def test_a_validating_process_that_fails_says_so() -> None:
    # An unexpected failure where the settings are validated (a bug, not a bad setting) shows its traceback
    # and stops the server with the settings' exit code, rather than leaving it waiting.
    script = (
        "import sys, serving.settings_child as child, serving.__main__ as cli\n"
        "def broken():\n    raise RuntimeError('validation broke')\n"
        "child._validate = broken\n"
        "sys.exit(cli.main(['serve', '--workers', '2']))\n"
    )
    result = run_python(script)
    assert result.returncode == 2
    assert "RuntimeError: validation broke" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the settings could not be validated: the validating process exited with 1 (its error is above)"
    )


def test_serve_help_describes_each_flag() -> None:
    # The descriptions come from the settings' model, imported only for --help.
    result = run_cli("serve", "--help")
    assert result.returncode == 0
    assert "Port to listen on (SageMaker requires 8080)." in " ".join(result.stdout.split())
    assert "Most rows per request; more is answered 400." in " ".join(result.stdout.split())


def _maps(pid: int, library: str) -> bool:
    return library in Path(f"/proc/{pid}/maps").read_text()


def test_workers_are_forked_from_a_supervisor_without_onnxruntime(tmp_path: Path) -> None:
    # serving/prefork.py: onnxruntime starts a thread when imported, and a fork keeps none of a parent's
    # threads; the supervisor imports everything else the workers use, and they import it after the fork.
    with running_server(tmp_path, args=["--workers", "2"]) as server:
        _wait_for(lambda: server.log().count("Application startup complete") == 2)
        parent = server.process.pid
        workers = _workers_of(parent)
        assert len(workers) == 2
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
        assert all(Path(f"/proc/{pid}/cmdline").read_bytes() == cmdline for pid in workers), "forked"
        assert not _maps(parent, "onnxruntime_pybind11_state")
        assert _maps(parent, "numpy")  # preloaded
        assert all(_maps(pid, "onnxruntime_pybind11_state") for pid in workers)
        for _ in range(4):  # both workers score (the kernel spreads new connections)
            response = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"connection": "close"})
            assert response.status_code == 200


def test_preload_leaves_out_onnxruntime_and_covers_the_workers_imports() -> None:
    # What a forked worker still imports: onnxruntime and the modules that need it, not numpy or uvicorn.
    script = (
        "import sys\n"
        "from serving.prefork import preload\n"
        "preload()\n"
        "assert 'onnxruntime' not in sys.modules, 'onnxruntime preloaded'\n"
        "before = set(sys.modules)\n"
        "import serving.app, serving.worker\n"
        "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))\n"
    )
    result = run_python(script)
    assert result.returncode == 0, result.stderr
    after_fork = set(result.stdout.split())
    assert "onnxruntime" in after_fork
    assert not after_fork & {"numpy", "uvicorn", "uvloop", "prometheus_client", "starlette"}, after_fork


def _caught_signals(pid: int) -> set[int]:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            mask = int(line.split()[1], 16)
            return {number for number in range(1, 65) if mask & (1 << (number - 1))}
    raise AssertionError("no SigCgt")


def test_a_forked_worker_handles_signals_as_a_single_server_does(tmp_path: Path) -> None:
    # Not as the supervisor it was forked from, whose handlers only queue a signal for its loop: a worker
    # keeping them would ignore SIGTERM until its server installs its own, and SIGHUP, SIGTTIN... always.
    with running_server(tmp_path, args=["--workers", "1"]) as single:
        alone = _caught_signals(single.process.pid)
    with running_server(tmp_path, args=["--workers", "2"]) as server:
        _wait_for(lambda: server.log().count("Application startup complete") == 2)
        supervisor = _caught_signals(server.process.pid)
        assert {signal.SIGHUP, signal.SIGTTIN} <= supervisor
        for worker in _workers_of(server.process.pid):
            assert _caught_signals(worker) == alone


def test_sigterm_while_workers_start_one_by_one_stops_the_server(tmp_path: Path) -> None:
    # Four workers on one CPU start one after another; a SIGTERM as one of them is forked must reach
    # that worker too (blocked across the fork, then delivered), not a copy of the supervisor's queue.
    available = sorted(os.sched_getaffinity(0))
    port = free_port()
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "serving", "serve", "--workers", "4", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO,
        env=base_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=lambda: os.sched_setaffinity(0, {available[0]}),
    )
    try:
        _wait_for(lambda: len(_children(process.pid)) >= 3, timeout=60)  # the tracker and the first workers
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            for child in _children(process.pid):
                os.kill(child, signal.SIGKILL)
            process.kill()
            process.wait()
        log.close()
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))  # nothing holds the port any more


def test_sighup_and_sigttou_leave_every_worker_serving_and_sigttin_adds_one(tmp_path: Path) -> None:
    # uvicorn would stop workers for these; a stopping worker shuts the shared port for all (drain.py).
    with running_server(tmp_path, args=["--workers", "2"]) as server:
        _wait_for(lambda: server.log().count("Application startup complete") == 2)
        before = _workers_of(server.process.pid)
        for sent in (signal.SIGHUP, signal.SIGTTOU):
            server.process.send_signal(sent)
            _wait_for(lambda sent=sent: f"Received {sent.name}: ignored" in server.log())
        time.sleep(1)
        assert _workers_of(server.process.pid) == before
        for _ in range(4):
            response = httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}, headers={"connection": "close"})
            assert response.status_code == 200
        server.process.send_signal(signal.SIGTTIN)
        _wait_for(lambda: server.log().count("Application startup complete") == 3)
        assert len(_workers_of(server.process.pid)) == 3
        assert httpx.post(server.url + "/score", json={"data": SAMPLE_ROWS}).status_code == 200
