"""The Python examples in the README and the guides run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "docs/core.md", "docs/migrating-from-pyjwt.md"]


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("name", DOCS)
def test_python_examples_run_when_pasted(name, capsys):
    blocks = _blocks(ROOT / name)
    assert blocks, f"{name} has no python examples"
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for block in blocks:  # one namespace per document: later blocks use earlier names
        exec(compile(block, f"{name}", "exec"), namespace)
    capsys.readouterr()


def test_docs_index_links_exist():
    index = (ROOT / "docs" / "index.md").read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([\w.-]+\.md)\)", index):
        assert (ROOT / "docs" / target).exists(), f"docs/index.md links to missing {target}"


# -- the README's shell tour, pasted after `make run` ----------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _sh_blocks(section: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", section, re.S)


def _make_run(tmp_path: Path, port: int):
    """``make run`` as the README says, with this test environment's virtualenv (its install
    stamp is taken as up to date) and a private data directory."""
    import os
    import signal
    import subprocess
    import sys

    venv = Path(sys.prefix)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JOTKIT_", "MAKE"))}
    env.update(JOTKIT_PORT=str(port), JOTKIT_DATA_DIR=str(tmp_path / "data"))
    log = (tmp_path / "make-run.log").open("w")
    # A terminal starts make with Ctrl-C at its default disposition and unblocked. A test
    # worker may not be in that state: a suite started as a background job of a
    # non-interactive shell (`cmd &`) ignores SIGINT (POSIX), and an ignored signal survives
    # exec, so the Ctrl-C of these tests would never reach jotkit. Say so in the log and give
    # make what a terminal gives.
    inherited = signal.getsignal(signal.SIGINT), signal.SIGINT in signal.pthread_sigmask(
        signal.SIG_BLOCK, []
    )
    if inherited != (signal.default_int_handler, False):
        log.write(f"(test) SIGINT in the test worker: handler {inherited[0]!r}, "
                  f"blocked {inherited[1]}; reset for make\n")
        log.flush()

    def terminal_sigint() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])

    proc = subprocess.Popen(
        ["make", "--no-print-directory", "-C", str(ROOT), "-o", f"{venv}/.jotkit-installed",
         "run", f"VENV={venv}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=terminal_sigint,  # two signal calls in the child, no locks taken
    )
    log.close()
    return proc, tmp_path / "make-run.log"


def _ctrl_c(proc) -> int:
    """Ctrl-C in the terminal: SIGINT to the whole foreground process group."""
    import os
    import signal
    import subprocess

    os.killpg(proc.pid, signal.SIGINT)
    try:
        return int(proc.wait(timeout=60))
    except subprocess.TimeoutExpired:  # leave nothing running behind a failed test
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        raise


def _wait_http(url: str, proc, log: Path) -> None:
    import time

    import httpx

    deadline = time.monotonic() + 90
    while True:
        assert proc.poll() is None, log.read_text()
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


@pytest.mark.slow
def test_readme_tour_works_when_pasted_after_make_run(tmp_path):
    import subprocess
    import sys

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    auth = _sh_blocks(_section(readme, "Quick start (auth service)"))
    resource = _section(readme, "Quick start (resource server)")
    tools = _sh_blocks(_section(readme, "Tools"))
    assert auth[0].strip().startswith("make run")
    port, rs_port, venv = _free_port(), _free_port(), Path(sys.prefix)
    proc, log = _make_run(tmp_path, port)
    rs = None
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        password = re.search(r"demo password  : (\S+)", log.read_text()).group(1)

        def paste(block: str) -> str:
            block = block.replace(". .venv/bin/activate", f". {venv}/bin/activate")
            block = block.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
            block = block.replace("127.0.0.1:8001", f"127.0.0.1:{rs_port}")
            block = block.replace("--port 8001", f"--port {rs_port}")
            return re.sub(r"^PASSWORD=.*$", f"PASSWORD='{password}'", block, flags=re.M)

        # the resource server, saved as orders.py and started as the README says
        (tmp_path / "orders.py").write_text(paste(re.findall(r"```python\n(.*?)```", resource,
                                                             re.S)[0]))
        (start_rs, *curl_rs) = _sh_blocks(resource)
        rs = subprocess.Popen(["bash", "-c", paste(start_rs)], cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
        _wait_http(f"http://127.0.0.1:{rs_port}/docs", rs, log)

        # the second terminal: the tour, logout, the resource server, the Tools
        steps = [*auth[1:], *curl_rs, tools[0]]
        script = "set -e\n" + "\necho\n".join(paste(step) for step in steps)
        result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                                text=True, timeout=180)
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        checks = [
            '"email":"demo@example.com"',        # GET /auth/me
            '"reason":"refresh_retry"',          # the spent refresh token within the grace window
            '{"status":"logged_out"}',           # logout
            '"reason":"revoked"',                # /auth/me after logout
            '{"user":"',                         # the resource server accepts the token
            "missing_token", " 401",             # ... and refuses a request without one
            "UNVERIFIED",                        # jotkit decode
            "VALID signature",                   # jotkit verify through the JWKS
        ]
        position = 0
        for expected in checks:  # in the README's order
            found = out.find(expected, position)
            assert found != -1, f"{expected!r} missing after position {position}:\n{out}"
            position = found + len(expected)
        assert (tmp_path / "mykey.private.pem").exists()  # jotkit keygen

        # the banner's own "Try it" lines, pasted as printed (introspection reads the 0600 file)
        banner = log.read_text().split("Try it", 1)[1].split("\n", 1)[1]
        lines = [line[2:] for line in banner.splitlines() if line.startswith("  ")]
        tried = subprocess.run(["bash", "-c", "set -e\n" + "\n".join(lines)], cwd=tmp_path,
                               capture_output=True, text=True, timeout=120)
        assert tried.returncode == 0, tried.stdout + tried.stderr
        for expected in ('"email":"demo@example.com"', '"active":true', '"refresh_token":',
                         '{"status":"logged_out"}'):
            assert expected in tried.stdout, tried.stdout
    finally:
        if rs is not None and rs.poll() is None:
            _ctrl_c(rs)
        status = _ctrl_c(proc) if proc.poll() is None else proc.returncode
    text = log.read_text()
    assert "Traceback" not in text
    assert "make: ***" not in text  # Ctrl-C is a normal stop, not a make error
    assert status in (0, 130, -2), text  # -2: make re-raises SIGINT on itself, as a shell expects


def _serve_process_in_main(pgid: int) -> bool:
    """True once the ``jotkit serve`` process of process group ``pgid`` runs ``main()`` and
    imports the service (``pydantic_core`` is mapped), before uvicorn takes over SIGINT."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[2]) != pgid:
            continue
        if any(arg.endswith(b"/jotkit") for arg in argv[:2]) and b"serve" in argv[1:3]:
            try:
                return "pydantic_core" in (entry / "maps").read_text()
            except OSError:
                return False
    return False


@pytest.mark.slow
def test_make_run_interrupted_while_starting_is_not_a_make_error(tmp_path):
    import time

    proc, log = _make_run(tmp_path, _free_port())
    deadline = time.monotonic() + 60
    while not _serve_process_in_main(proc.pid):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.005)
    status = _ctrl_c(proc)  # jotkit is importing the service, before uvicorn runs
    text = log.read_text()
    assert "Traceback" not in text
    assert "make: ***" not in text, text
    assert status in (0, 130, -2), text


def test_readme_names_the_debugger_default_port():
    from typer.testing import CliRunner

    from jotkit.cli import build_app

    result = CliRunner().invoke(build_app(include_server=False), ["debugger", "--help"])
    default = re.search(r"\[default: (\d+)\]", result.stdout).group(1)
    tools = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Tools")
    (line,) = [line for block in _sh_blocks(tools) for line in block.splitlines()
               if line.startswith("jotkit debugger")]
    assert f"http://127.0.0.1:{default}/" in line
