"""The documentation site: it builds strictly (no broken link or anchor), its reference pages list everything
the code defines, every command, key, variable and output its pages name is real, and its pages render in a
browser with no network."""

from __future__ import annotations

import functools
import html
import http.server
import os
import re
import shlex
import subprocess
import sys
import threading
import typing
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

import httpx
import pytest
import yaml
from pydantic import BaseModel

from docs_reference.outputs import outputs
from scripts import audit
from serving import errors
from serving.routes import ROUTES
from serving.settings import Settings
from stacks.config import NAMESPACE, StackConfig
from tests.chromium import needs_chromium, rendered
from tests.conftest import PRIMARY_KEY, send

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
# The pages people write (the reference pages are generated) and the README, which points into them.
WRITTEN = [*sorted(DOCS.rglob("*.md")), REPO / "README.md"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mkdocs build --strict`, as `make docs` runs it: a warning (a broken link or anchor) fails the build."""
    out = tmp_path_factory.mktemp("site")
    finished = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return out


def page(site: Path, path: str) -> str:
    """A built page's text, entities decoded, tags kept (so `<code>mlserve:aks.domain</code>` reads as such)."""
    return html.unescape((site / path / "index.html").read_text())


def nav_pages() -> list[str]:
    def walk(items: list[typing.Any]) -> Iterator[str]:
        for item in items:
            for value in item.values():
                yield from walk(value) if isinstance(value, list) else [value]

    return list(walk(yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"]))


def test_the_site_builds_strictly_with_every_page_of_the_navigation(site: Path) -> None:
    for source in nav_pages():
        built = "index.html" if source == "index.md" else source.removesuffix(".md") + "/index.html"
        assert (site / built).is_file(), source
    listed = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert listed == set(nav_pages()), "every page is in the navigation, and every navigation entry is a page"


# What the code defines, walked here independently of the generator.


def _sections(model: type[BaseModel], prefix: str) -> Iterator[str]:
    for name, info in model.model_fields.items():
        key = f"{prefix}{info.alias or name}"
        yield key
        for candidate in (info.annotation, *typing.get_args(info.annotation)):
            inner = typing.get_args(candidate)[0] if typing.get_origin(candidate) is tuple else candidate
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                yield from _sections(inner, f"{key}[]." if inner is not candidate else f"{key}.")
                break


STACK_KEYS = set(_sections(StackConfig, f"{NAMESPACE}:"))
SERVER_VARIABLES = {f"SERVING_{name.upper()}" for name in Settings.model_fields} | {"SERVING_SECRETS_DIR"}


def test_every_stack_setting_is_on_the_reference_page_with_its_description(site: Path) -> None:
    text = page(site, "reference/stack-settings")
    settings = {key for key in STACK_KEYS if not any(other.startswith(key + ".") for other in STACK_KEYS)}
    for key in settings:
        assert f"<code>{key}</code>" in text, key
    # the description written on the field, beside its key
    row = r"<code>mlserve:sagemaker.instanceType</code></td>((?!</tr>).)*Real-time instance type.</td>"
    assert re.search(row, text, re.DOTALL)


def test_every_server_setting_route_error_and_flag_is_on_its_reference_page(site: Path) -> None:
    settings = page(site, "reference/server-settings")
    for variable in SERVER_VARIABLES - {"SERVING_SECRETS_DIR"}:
        assert f"<code>{variable}</code>" in settings or variable == "SERVING_APPLICATIONINSIGHTS_CONNECTION_STRING"
    api = page(site, "reference/http-api")
    for route in ROUTES:
        assert f"<code>{route.template}</code>" in api, route.template
    codes = page(site, "reference/errors")
    for error in vars(errors).values():
        if isinstance(error, type) and issubclass(error, errors.RequestError):
            assert f"<code>{error.code}</code>" in codes, error.code
    cli = page(site, "reference/cli")
    for flag in ("--max-concurrent-requests", "--on-error", "--chunk-rows", "--accept-differences", "--project-dir"):
        assert flag in cli, flag


def test_every_exit_code_is_on_the_pages_from_the_table_the_command_returns_it_from(site: Path) -> None:
    from docs_reference.exit_codes import commands
    from serving.exit_codes import Serve

    cli = page(site, "reference/cli")
    for command, codes in commands().items():
        assert f"<code>{command}</code>" in cli, command
        for code in codes:
            assert f"<td>{int(code)}</td>" in cli, (command, code)
            assert f"<td>{html.unescape(code.meaning).replace('`', '')}" in re.sub(r"</?code>", "", cli), code.meaning
    for path in ("concepts/server", "troubleshooting"):
        text = re.sub(r"</?code>", "", page(site, path))
        assert all(f"<td>{int(c)}</td>\n<td>{c.meaning.replace('`', '')}</td>" in text for c in Serve), path
    # No page lists exit codes by hand.
    for source in [*DOCS.rglob("*.md"), REPO / "README.md"]:
        assert "| Exit code |" not in source.read_text(), source


def test_the_commands_exit_with_the_codes_their_tables_give(tmp_path: Path) -> None:
    """The table is what the commands return: a bad setting, a model that cannot be loaded, bad input."""
    from serving.exit_codes import Batch, Drift, Import, Serve

    def exit_code(*argv: str, **env: str) -> int:
        run = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120,
                             env={**os.environ, **env})  # fmt: skip
        return run.returncode

    missing, broken = str(tmp_path / "missing.onnx"), tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    assert exit_code("-m", "serving", "serve", "--port", "65000", SERVING_MAX_QUEUE_SIZE="-1") == Serve.SETTINGS
    assert exit_code("-m", "serving", "serve", "--port", "65000", SERVING_MODEL=str(broken)) == Serve.MODEL
    rows = tmp_path / "rows.csv"
    rows.write_text("a\n1\n")
    assert exit_code("-m", "serving", "batch", "--input", str(rows), "--output", str(tmp_path / "o.csv"),
                     "--model", missing) == Batch.FAILED  # fmt: skip
    assert exit_code("-m", "serving", "drift", "--source", str(tmp_path), "--model", missing) == Drift.BAD_INPUT
    imported = ("-m", "importer", missing, "--name", "x", "--version", "1", "--output", str(tmp_path / "m.onnx"))
    assert exit_code(*imported) == Import.REFUSED


def test_the_reference_shows_the_plans_outputs(site: Path) -> None:
    text = page(site, "reference/outputs")
    for plan in (REPO / "plans").glob("*.txt"):
        for name in outputs(plan):
            assert f"<code>{name}</code>" in text, name


# Every command, key, variable and output the written pages name is real.


def _written() -> Iterator[tuple[Path, str]]:
    for path in WRITTEN:
        yield path, path.read_text()


def test_every_stack_key_named_in_the_pages_exists() -> None:
    sections_and_keys = STACK_KEYS | {k.rsplit(".", 1)[0] for k in STACK_KEYS}
    for path, text in _written():
        # an error line shown as an example quotes the typo it is about
        examples = "\n".join(line for line in text.splitlines() if "did you mean" not in line)
        for found in re.findall(r"mlserve:[A-Za-z][\w.\[\]]*", examples):
            key = re.sub(r"\[\d*\]", "[]", found).rstrip(".")
            assert key in sections_and_keys, f"{path.relative_to(REPO)} names {found}, which is no stack setting"


def test_every_server_variable_named_in_the_pages_exists() -> None:
    for path, text in _written():
        for variable in re.findall(r"SERVING_[A-Z][A-Z_]*[A-Z]", text):
            assert variable in SERVER_VARIABLES, f"{path.relative_to(REPO)} names {variable}, which is no setting"


def test_every_make_target_named_in_the_pages_exists() -> None:
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for path, text in _written():
        for target in re.findall(r"(?:`|^)make ([a-z][a-z-]*)", text, re.MULTILINE):
            assert target in targets, f"{path.relative_to(REPO)} names `make {target}`, which the Makefile lacks"


def test_every_stack_output_named_in_the_pages_exists() -> None:
    names = {n for plan in (REPO / "plans").glob("*.txt") for n in outputs(plan)}
    bootstrap = set(re.findall(r'pulumi\.export\("(\w+)"', (REPO / "bootstrap" / "__main__.py").read_text()))
    for path, text in _written():
        for name in re.findall(r"pulumi stack output (\w+)", text):
            assert name in names | bootstrap, f"{path.relative_to(REPO)} names output {name}, which no stack exports"


def _options(parser: typing.Any) -> set[str]:
    return {option for action in parser._actions for option in action.option_strings}


def test_every_flag_of_a_command_shown_in_the_pages_exists() -> None:
    from importer.__main__ import parser as importer_parser
    from serving.__main__ import _parser

    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    known = {
        "-m serving batch": _options(commands["batch"]),
        "-m serving serve": _options(commands["serve"]),
        "-m serving drift": _options(commands["drift"]),
        "-m importer": _options(importer_parser()),
        "scripts/audit.py": _options(audit.parser()),
    }
    for path, text in _written():
        for line in text.replace("\\\n", " ").splitlines():
            for command, options in known.items():
                if command in line:
                    shown = line.split(command, 1)[1]
                    for flag in re.findall(r"(?<![\w-])(--?[a-z][\w-]*)", shown.split("#")[0]):
                        assert flag in options, f"{path.relative_to(REPO)}: `{command} {flag}` is no such flag"


# The pages in a browser with no network: the theme's scripts and styles come from the site itself.


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_no_page_loads_a_script_style_or_font_from_another_host(site: Path) -> None:
    for built in site.rglob("*.html"):
        text = built.read_text()
        assert not re.search(r"<script[^>]+src=\"(https?:)?//", text), built
        assert not re.search(r"<link[^>]+href=\"(https?:)?//", text), built


@needs_chromium
@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("", "Who it is for"),
        ("getting-started/", "Make a first call"),
        ("reference/stack-settings/", "mlserve:aks.tlsCertificate.keyVaultId"),
    ],
)
def test_pages_render_their_content_with_no_network(served: str, path: str, shown: str) -> None:
    dom = html.unescape(rendered(f"{served}/{path}"))
    # Material's bundle, loaded from the site, swaps the page's `no-js` class for `js` once it runs.
    assert re.search(r'<html[^>]*class="[^"]*\bjs\b', dom), dom[:500]
    assert shown in dom
    for title in ("Getting started", "Troubleshooting"):  # the navigation
        assert title in dom


# Every call the pages show with its answer gets that answer, byte for byte.


def documented_calls(text: str) -> Iterator[tuple[str, list[str]]]:
    """(shell command, the answer shown under it) for each `curl ... localhost:8080` in a `sh` block followed by
    `# <answer>` lines; a command runs on until its quotes close, as in the shell."""
    for block in re.findall(r"```sh\n(.*?)```", text, re.DOTALL):
        lines, command = block.splitlines(), ""
        for number, line in enumerate(lines):
            if not command and line.lstrip().startswith("#"):
                continue  # a comment (an answer, or words: "the model's order" opens no quote)
            text_of_line = line.rstrip().removesuffix("\\")
            command = f"{command} {text_of_line}" if command else text_of_line
            try:
                shlex.split(command)
            except ValueError:
                continue  # an open quote: the command goes on
            if line.rstrip().endswith("\\"):
                continue
            if "curl" in command and "localhost:8080" in command:
                answer = []
                for following in lines[number + 1 :]:
                    if not following.startswith("# "):
                        break
                    answer.append(following[2:].strip())
                if answer:
                    yield command, answer
            command = ""


def curl(command: str) -> tuple[str, str, dict[str, str], str | None]:
    """The method, path, headers and body a `[printf ... |] curl` command sends."""
    stdin = None
    if " | curl " in command:
        producer, command = command.split(" | ", 1)
        stdin = shlex.split(producer)[1].encode().decode("unicode_escape")  # printf's \n
    args = iter(shlex.split(command)[1:])
    path, headers, body = "", {}, None
    for arg in args:
        if arg == "-s":
            continue
        if arg == "-H":
            name, value = next(args).split(":", 1)
            headers[name.strip()] = value.strip().replace("$KEY", PRIMARY_KEY)
        elif arg in ("-d", "--data-binary"):
            body = next(args)
            body = stdin if body == "@-" else body
        elif arg.startswith("localhost:8080"):
            path = arg.removeprefix("localhost:8080")
        else:
            raise AssertionError(f"a curl option this test does not know: {arg}")
    if body is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")  # what curl -d sends
    return ("POST" if body is not None else "GET"), path, headers, body


@pytest.fixture(scope="module")
def open_client() -> Iterator[httpx.Client]:
    """The app in process as `make serve` runs it: the demo model, no keys."""
    from starlette.testclient import TestClient

    from serving.app import create_app, load_runtime

    settings = Settings(access_log=False)
    app = create_app(settings, load_runtime(settings))
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as http:
        yield http
    app.pool.shutdown()


@pytest.mark.parametrize("path", [DOCS / "getting-started.md", REPO / "README.md"], ids=lambda p: p.name)
def test_every_call_shown_with_its_answer_gets_that_answer(
    path: Path, open_client: httpx.Client, client: httpx.Client
) -> None:
    calls = list(documented_calls(path.read_text()))
    assert calls, "the page shows calls with their answers"
    for command, answer in calls:
        method, route, headers, body = curl(command)
        if "Authorization" in headers:  # the $KEY of a server started with keys
            response = send(client, method, route, headers.pop("Authorization"), headers=headers, content=body)
        else:
            response = open_client.request(method, route, headers=headers, content=body)
        assert response.status_code == 200, (command, response.text)
        if response.headers["content-type"].startswith("text/csv"):
            assert response.text.splitlines() == answer, command
        else:
            assert response.text == "".join(answer), command


def test_the_diagram_is_an_image_of_the_site_itself(site: Path) -> None:
    """The picture renders with no network: an SVG in the site, not a diagram drawn by a script from a CDN."""
    sources = re.findall(r'<img[^>]+src="([^"]+\.svg)"', (site / "index.html").read_text())
    assert sources, "the home page shows the diagram"
    for source in sources:
        diagram = (site / source).resolve()
        assert diagram.is_relative_to(site.resolve()), source
        root = ElementTree.parse(diagram).getroot()  # noqa: S314 - the repository's own file
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}title") is not None, "a title for screen readers"
