"""Run the repository's GitHub Actions workflows with act on podman (see ../shared/WORKFLOWS-LOCALLY.md).

Each run gets a scratch directory R holding a copy of the repository (a git repository whose main
branch is the working tree, `origin` pushing to the bare R/remote.git), the stand-in actions and
the stand-in CLIs. act runs the jobs in a Debian container with the workspace bind-mounted and R
mounted at its own path. The actions are local composite stand-ins (`--local-repository`) and
`pulumi`, `az`, `aws`, `kubectl`, `gh`, `make`, `sudo` and the program's `.venv/bin/python` are one small
script that hands its arguments to this harness on the host and replays the answer: the harness
records every call in order, answers it (`pulumi stack output`, `gh pr list`, ...) or fails it when
a test says so, and runs the repository's own Python scripts (release_model.py, smoke_test.py,
the offline plan) for real, on the host, in the same workspace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.serving.server import REPO

PODMAN = ["podman", "--runtime", "runc"]
JOB_IMAGE = "localhost/pipeline-act-job:bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
MMDEBSTRAP = ["mmdebstrap", "--variant=minbase", "--include=bash,git,ca-certificates", "bookworm"]
ACT = Path(sys.executable).parent / "act"
RUNNER = "ubuntu-24.04"
ORG = "acme"
REPOSITORY = "example/mlserve"
CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
runtime = "runc"
"""

# Every action the workflows use, with the inputs its stand-in passes on to the recorder.
ACTIONS: dict[str, list[str]] = {
    "actions/checkout@v5": ["ref", "token", "fetch-depth", "persist-credentials"],
    "actions/setup-python@v6": ["python-version"],
    "actions/cache@v5": ["path", "key", "restore-keys"],
    "docker/setup-buildx-action@v4": [],
    "azure/login@v3": ["client-id", "tenant-id", "subscription-id"],
    "aws-actions/configure-aws-credentials@v6": ["role-to-assume", "aws-region", "role-duration-seconds"],
    "azure/use-kubelogin@v1": ["kubelogin-version"],
    "pulumi/actions@v7": ["command", "stack-name", "policyPacks", "diff", "comment-on-pr", "upsert"],
    "actions/upload-artifact@v7": ["name", "path", "if-no-files-found"],
    "actions/upload-pages-artifact@v5": ["path"],
    "actions/deploy-pages@v5": [],
}
CLIS = ["pulumi", "az", "aws", "kubectl", "gh", "make", "action", "python", "sudo"]

FORWARDER = r"""#!/bin/bash
# Stand-in CLI: hands its name and arguments to the test harness and replays its answer.
calls=@CALLS@
id="$(date +%s%N)-$$-$RANDOM"
mkdir "$calls/$id.tmp"
printf '%s\0' "${0##*/}" "$@" > "$calls/$id.tmp/argv"
pwd > "$calls/$id.tmp/cwd"
env -0 > "$calls/$id.tmp/env"
mv "$calls/$id.tmp" "$calls/$id.call"
for _ in $(seq 6000); do
  [ -e "$calls/$id.call/rc" ] && break
  sleep 0.05
done
cat "$calls/$id.call/stdout" 2>/dev/null
cat "$calls/$id.call/stderr" >&2 2>/dev/null
exit "$(cat "$calls/$id.call/rc" 2>/dev/null || echo 124)"
"""


# actions/checkout: a fresh clone of "GitHub" (the bare repository) in the workspace, as on a runner.
CHECKOUT = f"""echo "$BIN" >> "$GITHUB_PATH"
if [ ! -e /run/.containerenv ] && [ ! -e /.dockerenv ]; then
  case "$GITHUB_WORKSPACE" in  # on the host: empty only act's own copy, never the repository
    "$ACT_CACHE"/*) ;;
    *) echo "stand-in checkout: workspace $GITHUB_WORKSPACE is not under $ACT_CACHE" >&2; exit 1 ;;
  esac
fi
cd "$GITHUB_WORKSPACE"
find . -mindepth 1 -delete
git clone -q --no-checkout "$REMOTE" .
git remote set-url origin https://github.com/{REPOSITORY}.git
git remote set-url --push origin "$REMOTE"
if [ -n "$REF" ] && git rev-parse -q --verify "origin/$REF" >/dev/null; then
  git checkout -q -B "$REF" "origin/$REF"
else
  git checkout -q --detach "${{REF:-$GITHUB_SHA}}"
fi
"""


def missing() -> str | None:
    """Why act cannot run the workflows here, or None."""
    if not ACT.exists():
        return f"act is not installed in {ACT.parent} (pip install -r requirements-dev.txt)"
    absent = [t for t in ("bash", "git") if shutil.which(t) is None]
    return f"act's jobs need {', '.join(absent)}" if absent else None


def missing_containers() -> str | None:
    """Why act cannot run jobs in podman containers here, or None."""
    tools = ["podman", "runc"] + ([] if os.environ.get("MLSERVE_TEST_JOB_BASE") else ["mmdebstrap"])
    absent = [t for t in tools if shutil.which(t) is None]
    if absent:
        return f"no container engine for act: {', '.join(absent)} missing (apt-get install podman runc mmdebstrap)"
    if os.geteuid() != 0:
        return "the podman recipe here needs root (see ../shared/WORKFLOWS-LOCALLY.md)"
    return missing()


def podman(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PODMAN, *args], capture_output=True, text=True, timeout=timeout, check=True)


def job_image() -> str:
    """The job container: Debian bookworm with bash and git, built once and kept by name.

    From Debian's packages with mmdebstrap (no registry is needed), or FROM $MLSERVE_TEST_JOB_BASE
    (e.g. docker.io/library/debian:bookworm) where a registry is reachable."""
    if subprocess.run([*PODMAN, "image", "exists", JOB_IMAGE], check=False).returncode == 0:
        return JOB_IMAGE
    base = os.environ.get("MLSERVE_TEST_JOB_BASE")
    with tempfile.TemporaryDirectory() as tmp:
        if base:
            (Path(tmp) / "Containerfile").write_text(
                f"FROM {base}\nRUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates\n"
            )
            podman("build", "--network=host", "-t", JOB_IMAGE, tmp)
        else:
            rootfs = Path(tmp) / "rootfs.tar"
            subprocess.run(
                [*MMDEBSTRAP, str(rootfs), DEBIAN_MIRROR],
                check=True,
                capture_output=True,
                timeout=600,
            )
            podman("import", str(rootfs), JOB_IMAGE)
    return JOB_IMAGE


@contextmanager
def podman_service(directory: Path) -> Iterator[str]:
    """podman's Docker-compatible API on a socket of our own, stopped on exit."""
    conf = directory / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    socket = directory / "podman.sock"
    service = subprocess.Popen(
        [*PODMAN, "system", "service", "--time=0", f"unix://{socket}"],
        env={**os.environ, "CONTAINERS_CONF": str(conf)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        yield f"unix://{socket}"
    finally:
        service.terminate()
        service.wait(timeout=30)


@dataclass
class Call:
    argv: list[str]
    job: str
    workflow: str
    cwd: str
    model: str | None = None  # for pulumi: the model version in the stack file it ran with

    @property
    def line(self) -> str:
        return " ".join(self.argv)


@dataclass
class Stand:
    """How the stand-ins answer: `fail` lists command prefixes that exit 1; `answers` prefix -> stdout."""

    fail: Sequence[str] = ()
    answers: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, Any] = field(default_factory=dict)  # pulumi stack output, per stack name
    real_plans: bool = False  # `make plans` runs the offline plan for real (slow: two stacks)
    env: Mapping[str, str] = field(default_factory=dict)  # for the repository's scripts on the host


@dataclass
class Run:
    returncode: int
    jobs: list[tuple[str, str]]  # (job, result) in the order they finished
    calls: list[Call]
    log: str

    def lines(self, job: str | None = None) -> list[str]:
        return [c.line for c in self.calls if job is None or c.job == job]

    def clis(self, *names: str) -> list[str]:
        return [c.line for c in self.calls if c.argv[0] in names]


class Workspace:
    """A scratch copy of the repository and the stand-ins, and the recorder that answers them."""

    def __init__(self, root: Path, socket: str | None = None, source: Path = REPO) -> None:
        self.root = root
        self.socket = socket
        self.repo = root / "repo"  # where act runs (the event's commit is its HEAD) and the tests commit
        self.remote = root / "remote.git"
        self.bin = root / "bin"
        self.calls_dir = root / "calls"
        self.actions = root / "actions"
        self.cache = root / "model-cache"
        self.act_cache = root / "act-cache"  # act's host workspaces (XDG_CACHE_HOME)
        for directory in (self.bin, self.calls_dir, self.actions, self.cache):
            directory.mkdir(parents=True)
        self._copy_repository(source)
        self._write_stand_ins()

    def git(self, *args: str, cwd: Path | None = None) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args],
            cwd=cwd or self.repo,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout.strip()

    def _copy_repository(self, source: Path) -> None:
        files = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=source,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        for name in filter(None, (f.decode() for f in files)):
            origin = source / name
            if origin.is_file():
                target = self.repo / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(origin, target, follow_symlinks=False)
        self.git("init", "-q", "-b", "main")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", "The repository as it is")
        self.git("init", "-q", "--bare", str(self.remote))
        # act reads the repository's name from origin's URL; the bare repository plays GitHub.
        self.git("remote", "add", "origin", f"https://github.com/{REPOSITORY}.git")
        self.git("config", "remote.origin.pushurl", str(self.remote))
        self.git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        self.git("push", "-q", "origin", "main")

    def fetch(self) -> None:
        self.git("fetch", "-q", str(self.remote), "+refs/heads/*:refs/remotes/origin/*")

    def branches(self) -> list[str]:
        """The branches on "GitHub"."""
        return self.git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=self.remote).split()

    def _write_stand_ins(self) -> None:
        forwarder = self.bin / "forward"
        forwarder.write_text(FORWARDER.replace("@CALLS@", str(self.calls_dir)))
        forwarder.chmod(0o755)
        for name in CLIS:
            (self.bin / name).symlink_to("forward")
        for action, inputs in ACTIONS.items():
            steps: list[dict[str, Any]] = []
            if action.startswith("actions/checkout"):
                # Every job starts here: the stand-in CLIs go first on PATH, the workspace is cloned.
                env = {"REF": "${{ inputs.ref }}", "REMOTE": str(self.remote), "BIN": str(self.bin)}
                env["ACT_CACHE"] = str(self.act_cache)
                steps.append({"shell": "bash", "env": env, "run": CHECKOUT})
            if action.startswith("pulumi/actions"):
                steps.append({"shell": "bash", "env": pulumi_env(), "run": script_pulumi(self.bin)})
            else:
                env = {f"IN{i}": f"${{{{ inputs.{name} }}}}" for i, name in enumerate(inputs)}
                pairs = " ".join(f'${{IN{i}:+"{name}=$IN{i}"}}' for i, name in enumerate(inputs))
                name = action.split("@", 1)[0]
                steps.append({"shell": "bash", "env": env, "run": f"{self.bin}/action {name} {pairs}".strip()})
            definition = {
                "name": f"stand-in for {action}",
                "inputs": {i: {"required": False, "default": ""} for i in inputs},
                "runs": {"using": "composite", "steps": steps},
            }
            directory = self.actions / action.replace("/", "--").replace("@", "--")
            directory.mkdir()
            (directory / "action.yml").write_text(yaml.safe_dump(definition, sort_keys=False))

    def run(
        self,
        event: str,
        payload: Mapping[str, Any],
        workflows: Sequence[str],
        variables: Mapping[str, str],
        stand: Stand | None = None,
        secrets: Mapping[str, str] | None = None,
        in_containers: bool = False,
    ) -> Run:
        """One act run of `workflows` (file names) for `event`; deploy.yml is always there to be called."""
        stand = stand or Stand()
        selected = self.root / f"selected-{time.monotonic_ns()}"
        selected.mkdir()
        for name in workflows:
            shutil.copy(self.repo / ".github" / "workflows" / name, selected / name)
        event_file = selected / "event.json"
        event_file.write_text(json.dumps(payload))
        command = [
            str(ACT),
            event,
            "-W",
            str(selected),
            "-e",
            str(event_file),
            "-P",
            f"{RUNNER}={job_image() if in_containers else '-self-hosted'}",
            "--pull=false",
            "--container-daemon-socket",
            "-",
            "--no-skip-checkout",
            "--json",
        ]
        if in_containers:
            mounts = [self.bin, self.calls_dir, self.remote, self.actions]
            command += ["--container-options", " ".join(f"-v {m}:{m}" for m in mounts)]
        for action in ACTIONS:
            command += ["--local-repository", f"{action}={self.actions / action.replace('/', '--').replace('@', '--')}"]
        for key, value in variables.items():
            command += ["--var", f"{key}={value}"]
        for key, value in {"PULUMI_ACCESS_TOKEN": "pul-test-token", **(secrets or {})}.items():
            command += ["--secret", f"{key}={value}"]
        recorder = Recorder(self, stand)
        with recorder.running():
            result = subprocess.run(
                command,
                cwd=self.repo,
                capture_output=True,
                text=True,
                timeout=480,
                env={
                    **os.environ,
                    # act keeps each job's host workspace under its cache: here, not in ~/.cache/act.
                    "XDG_CACHE_HOME": str(self.act_cache),
                    **({"DOCKER_HOST": self.socket} if self.socket else {}),
                },
                check=False,
            )
        jobs = []
        for line in result.stdout.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if "jobResult" in entry:
                name = entry["job"].strip()
                if entry.get("matrix"):  # act numbers matrix jobs: "Preview dev-1"
                    name = name.rsplit("-", 1)[0]
                jobs.append((name, entry["jobResult"]))
        return Run(result.returncode, jobs, recorder.calls, result.stdout + result.stderr)


DEFAULT_TYPES = {"pull_request": ["opened", "synchronize", "reopened"]}


def triggered(event: str, payload: Mapping[str, Any], cron: str | None = None) -> list[str]:
    """The workflows GitHub starts for this event (its activity types, branches and schedule); a
    workflow_dispatch starts the one workflow named in the payload's `workflow`."""
    if event == "workflow_dispatch":
        return [str(payload["workflow"])]
    names = []
    for path in sorted((REPO / ".github" / "workflows").glob("*.yml")):
        on = yaml.safe_load(path.read_text())[True]  # YAML 1.1 reads the key `on` as True
        if event not in on:
            continue
        spec = on[event] or {}
        types = spec.get("types", DEFAULT_TYPES.get(event)) if isinstance(spec, dict) else None
        if types and payload.get("action") not in types:
            continue
        if event == "schedule" and {"cron": cron} not in spec:
            continue
        branch = str(payload.get("ref", "")).removeprefix("refs/heads/") if event == "push" else None
        base = (payload.get("pull_request") or {}).get("base", {}).get("ref") if event == "pull_request" else None
        wanted = spec.get("branches") if isinstance(spec, dict) else None
        if wanted and (branch or base) not in wanted:
            continue
        names.append(path.name)
    return names


def pulumi_env() -> dict[str, str]:
    return {
        "CMD": "${{ inputs.command }}",
        "STACK_NAME": "${{ inputs.stack-name }}",
        "POLICY": "${{ inputs.policyPacks }}",
        "DIFF": "${{ inputs.diff }}",
        "UPSERT": "${{ inputs.upsert }}",
    }


def script_pulumi(bin_dir: Path) -> str:
    """pulumi/actions: with a command, the CLI call it makes; without, it only installs the CLI."""
    return (
        f"{bin_dir}/action pulumi/actions ${{CMD:+command=$CMD}}\n"
        '[ -n "$CMD" ] || exit 0\n'
        'if [ "$UPSERT" = true ]; then pulumi stack select --create --stack "$STACK_NAME" --non-interactive; fi\n'
        'args=("$CMD" --stack "$STACK_NAME" --non-interactive)\n'
        'if [ "$CMD" = up ]; then args+=(--yes); fi\n'
        'if [ -n "$POLICY" ]; then args+=(--policy-pack "$POLICY"); fi\n'
        'if [ "$DIFF" = true ]; then args+=(--diff); fi\n'
        'pulumi "${args[@]}"\n'
    )


class Recorder:
    """Answers the stand-ins' calls in the order they were made; each in a thread (calls nest)."""

    def __init__(self, workspace: Workspace, stand: Stand) -> None:
        self.workspace = workspace
        self.stand = stand
        self.calls: list[Call] = []
        self._stop = threading.Event()
        self._seen: set[str] = set()

    @contextmanager
    def running(self) -> Iterator[None]:
        watcher = threading.Thread(target=self._watch, daemon=True)
        watcher.start()
        try:
            yield
        finally:
            self._stop.set()
            watcher.join(timeout=10)
            for request in self.workspace.calls_dir.iterdir():  # the next run starts with none
                shutil.rmtree(request, ignore_errors=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            for request in sorted(self.workspace.calls_dir.glob("*.call")):
                if request.name not in self._seen:
                    self._seen.add(request.name)
                    call = self._parse(request)
                    self.calls.append(call)
                    threading.Thread(target=self._answer, args=(request, call), daemon=True).start()
            time.sleep(0.02)

    def _parse(self, request: Path) -> Call:
        argv = (request / "argv").read_bytes().decode().split("\0")[:-1]
        env = self._env(request)
        cwd = (request / "cwd").read_text().strip()
        call = Call(argv, env.get("GITHUB_JOB", ""), env.get("GITHUB_WORKFLOW", ""), cwd)
        if argv[0] == "pulumi" and "--stack" in argv:
            stack = argv[argv.index("--stack") + 1].rsplit("/", 1)[-1]
            stack_file = Path(cwd) / f"Pulumi.{stack}.yaml"
            if stack_file.is_file():
                config = (yaml.safe_load(stack_file.read_text()) or {}).get("config") or {}
                call.model = str((config.get("mlserve:model") or {}).get("version"))
        return call

    @staticmethod
    def _env(request: Path) -> dict[str, str]:
        pairs = (request / "env").read_bytes().decode(errors="replace").split("\0")
        return dict(p.split("=", 1) for p in pairs if "=" in p)

    def _answer(self, request: Path, call: Call) -> None:
        try:
            rc, out, err = self._handle(call, self._env(request))
        except Exception as error:  # a broken answer must not hang the run
            rc, out, err = 70, "", f"stand-in {call.argv[0]} raised {error!r}\n"
        (request / "stdout").write_text(out)
        (request / "stderr").write_text(err)
        (request / "rc.tmp").write_text(str(rc))
        (request / "rc.tmp").rename(request / "rc")

    def _handle(self, call: Call, env: dict[str, str]) -> tuple[int, str, str]:
        line = call.line
        if any(line.startswith(prefix) for prefix in self.stand.fail):
            return 1, "", f"stand-in {call.argv[0]}: told to fail ({line})\n"
        for prefix, answer in self.stand.answers.items():
            if line.startswith(prefix):
                return 0, answer, ""
        name, args = call.argv[0], call.argv[1:]
        cwd = Path(call.cwd)
        if name == "make" and args == [".venv/.installed-stamp"]:
            python = cwd / ".venv" / "bin" / "python"
            python.parent.mkdir(parents=True, exist_ok=True)
            if not python.is_symlink():
                python.symlink_to(self.workspace.bin / "forward")
            return 0, "", ""
        if name == "make" and args == ["plans"] and self.stand.real_plans:
            return self._python(["-m", "offline.plan", "--stack", "dev", "--write"], cwd, env, then=["prod"])
        if name == "python":
            return self._python(args, cwd, env)
        if name == "pulumi" and args[:2] == ["stack", "output"]:
            stack = args[args.index("--stack") + 1].rsplit("/", 1)[-1]
            outputs = self.stand.outputs.get(stack, {})
            named = [a for a in args[2:] if not a.startswith("-") and a != args[args.index("--stack") + 1]]
            if not named:
                return 0, json.dumps(outputs), ""
            if named[0] not in outputs:  # as pulumi answers a name the stack does not export
                return 255, "", f"error: current stack does not have output property '{named[0]}'\n"
            value = outputs[named[0]]
            return 0, (value if isinstance(value, str) else json.dumps(value)) + "\n", ""
        if name == "aws" and args[:2] == ["sagemaker-runtime", "invoke-endpoint"]:
            Path(args[-1]).write_text("1\n")
            return 0, "{}", ""
        return 0, "", ""

    def _python(
        self, args: list[str], cwd: Path, env: dict[str, str], then: Sequence[str] = ()
    ) -> tuple[int, str, str]:
        """The repository's own scripts, on the host, with the step's variables and the stand-in CLIs."""
        kept = {k: v for k, v in env.items() if k.isupper() and k not in {"PATH", "HOME", "HOSTNAME", "PWD"}}
        host_env = {
            **os.environ,
            **kept,
            "PATH": f"{self.workspace.bin}:{os.environ['PATH']}",
            "MLSERVE_MODEL_CACHE": str(self.workspace.cache),
            "SMOKE_READY_TIMEOUT": "2",
            **self.stand.env,
        }
        outputs, errors = [], []
        for extra in [None, *then]:
            argv = list(args) if extra is None else [*args[:3], extra, *args[4:]]
            result = subprocess.run(
                [sys.executable, *argv], cwd=cwd, env=host_env, capture_output=True, text=True, timeout=300
            )
            outputs.append(result.stdout)
            errors.append(result.stderr)
            if result.returncode:
                return result.returncode, "".join(outputs), "".join(errors)
        return 0, "".join(outputs), "".join(errors)
