"""The code interpreter under ``cupola serve``, as users run it (its own process, uvloop), with a
scripted deployment that calls it: it computes, and a hostile snippet sees nothing of the
server (issue 8, findings 2 and 3).

Each probe is a canned ``code_interpreter`` call of the ``coder`` deployment, picked by the
user input ``probe:<name>``; it prints ``RESULT <json>``, which the test reads back from the
``code_interpreter_call`` item the server returns.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from cupola.tools.sandbox import Container
from live_server import free_port, serve_process

OTHER = "cntr_someoneelse"
CANARY = f"canary-{secrets.token_hex(8)}"
SECRET = f"sk-live-{secrets.token_hex(12)}"
MARKER = f"{4000 + os.getpid() % 1000}.{secrets.randbelow(10**9)}"

COMPUTE = "open('answer.txt', 'w').write('45')\nsum(range(10))"
FILES = """
import json, os
found = {}
for path in PATHS:
    try:
        with open(path, 'rb') as f:
            found[path] = 'READ ' + f.read(64).hex()
    except OSError as exc:
        found[path] = type(exc).__name__
found['listing /'] = sorted(os.listdir('/'))
print('RESULT ' + json.dumps(found))
"""
PROC = """
import json, os
seen, leaks = [], []
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    for part in ('environ', 'cmdline'):
        try:
            with open(f'/proc/{pid}/{part}', 'rb') as f:
                data = f.read()
        except OSError:
            continue
        seen.append(int(pid))
        if CANARY.encode() in data or b'cupola' in data:
            leaks.append([pid, part])
env = CANARY in str(os.environ) or any('CUPOLA' in k for k in os.environ)
print('RESULT ' + json.dumps({'pids': sorted(set(seen)), 'leaks': leaks, 'env': env}))
"""
NET = """
import json, socket
tried = {}
for host in ('127.0.0.1', '::1', socket.gethostname()):
    try:
        socket.create_connection((host, PORT), timeout=2).close()
        tried[host] = 'CONNECTED'
    except OSError as exc:
        tried[host] = type(exc).__name__
tried['interfaces'] = [name for _, name in socket.if_nameindex()]
print('RESULT ' + json.dumps(tried))
"""
SPAWN = """
import json, os, subprocess
subprocess.Popen(['sleep', MARKER], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp('sleep', ['sleep', MARKER])
    os._exit(0)
os.wait()
print('RESULT ' + json.dumps({'spawned': True}))
"""
DECRYPT = """
import json, sqlite3
out = {}
try:
    key = open(KEY, 'rb').read()
    rows = sqlite3.connect(DB).execute('select * from connections').fetchall()
    from cryptography.fernet import Fernet
    out['plain'] = [Fernet(key).decrypt(c.encode()).decode()
                    for row in rows for c in row if isinstance(c, str) and c.startswith('gAAAA')]
except Exception as exc:
    out['error'] = type(exc).__name__
print('RESULT ' + json.dumps(out))
"""
LEAK = "print('RESULT ' + 'sk-live-' + SECRET_TAIL)"


@dataclass
class Served:
    url: str
    port: int
    data_dir: Path
    log: Path
    pid: int

    @property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key="x", max_retries=0)


def script(data_dir: Path, port: int) -> list[dict[str, Any]]:
    values = {
        "PATHS": [
            str(data_dir / "cupola.db"),
            str(data_dir / "secret.key"),
            str(data_dir / "containers" / "default" / OTHER / "note.txt"),
            f"../{OTHER}/note.txt",
            "/proc/1/root/etc/hostname",
            "/etc/shadow",
        ],
        "CANARY": CANARY,
        "PORT": port,
        "MARKER": MARKER,
        "KEY": str(data_dir / "secret.key"),
        "DB": str(data_dir / "cupola.db"),
        "SECRET_TAIL": SECRET.removeprefix("sk-live-"),
    }
    probes = {
        "compute": COMPUTE,
        "files": FILES,
        "proc": PROC,
        "net": NET,
        "spawn": SPAWN,
        "decrypt": DECRYPT,
        "leak": LEAK,
    }
    steps: list[dict[str, Any]] = []
    for name, body in probes.items():
        preamble = "".join(f"{k} = {v!r}\n" for k, v in values.items() if k in body)
        call = {"name": "code_interpreter", "arguments": {"code": preamble + body}}
        steps.append({"match": f"^probe:{name}$", "tool_calls": [call]})
    steps.append({"reply": "done"})  # after the tool's output
    return steps


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("serve")
    data_dir = root / "data"
    other = Container.ensure(data_dir, "default", OTHER, "someone else")
    (other.workdir / "note.txt").write_text("another conversation's file")
    port = free_port()
    config = root / "cupola.yaml"
    config.write_text(
        json.dumps(
            {
                "project": "default",
                "data_dir": str(data_dir),
                "deployments": [
                    {"name": "coder", "provider": "scripted", "mode": "script"}
                    | {"script": script(data_dir, port)}
                ],
            }
        )
    )
    log = root / "serve.log"
    with serve_process(config, port=port, env={"SERVER_CANARY": CANARY}, output=log) as served:
        url, proc = served
        # A stored connection secret: the key file and an encrypted row now exist.
        put = httpx.put(
            f"{url}/api/projects/default/connections/upstream",
            params={"api-version": "v1"},
            json={
                "type": "ApiKey",
                "target": "https://api.example.com/v1",
                "credentials": {"type": "ApiKey", "key": SECRET},
            },
        )
        assert put.status_code == 200, put.text
        assert (data_dir / "secret.key").exists() and (data_dir / "cupola.db").exists()
        yield Served(url, port, data_dir, log, proc.pid)


def probe(served: Served, name: str) -> tuple[Any, str]:
    """Run one probe through ``/v1/responses``; its item, and the raw body the server sent."""
    raw = httpx.post(
        f"{served.url}/v1/responses",
        json={
            "model": "coder",
            "input": f"probe:{name}",
            "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}],
        },
        timeout=60,
    )
    assert raw.status_code == 200, raw.text
    body = raw.json()
    assert body["status"] == "completed", body
    call = body["output"][0]
    assert call["type"] == "code_interpreter_call", body
    assert SECRET not in raw.text
    return call, raw.text


def result(call: dict[str, Any]) -> Any:
    logs = call["outputs"][0]["logs"]
    assert call["status"] == "completed" and logs.startswith("RESULT "), logs
    return json.loads(logs.removeprefix("RESULT "))


def test_it_computes_under_cupola_serve(served: Served) -> None:
    client = served.client
    response = client.responses.create(
        model="coder",
        input="probe:compute",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
    )
    assert response.status == "completed" and response.output_text == "done"
    call = response.output[0]
    assert call.type == "code_interpreter_call" and call.status == "completed"
    assert call.outputs is not None and call.outputs[0].type == "logs"
    assert call.outputs[0].logs == "45\n"
    (file,) = client.containers.files.list(call.container_id).data
    content = client.containers.files.content.retrieve(file.id, container_id=call.container_id)
    assert (file.path, content.content) == ("answer.txt", b"45")
    assert "Traceback" not in served.log.read_text()


def test_no_file_of_the_server_or_of_another_container(served: Served) -> None:
    found = result(probe(served, "files")[0])
    listing = found.pop("listing /")
    assert found and all(not str(v).startswith("READ") for v in found.values()), found
    assert not {"home", "run", "var", "srv", "opt"} & set(listing), listing


def test_no_process_or_environment_of_the_server(served: Served) -> None:
    found = result(probe(served, "proc")[0])
    assert found["leaks"] == [] and found["env"] is False
    assert served.pid not in found["pids"] and max(found["pids"]) < 10  # its own PID namespace


def test_no_network_and_not_the_servers_port(served: Served) -> None:
    found = result(probe(served, "net")[0])
    assert found.pop("interfaces") == ["lo"]
    assert found and all(v != "CONNECTED" for v in found.values()), found


def test_no_process_is_left_behind(served: Served) -> None:
    assert result(probe(served, "spawn")[0]) == {"spawned": True}
    deadline = time.monotonic() + 3
    while True:
        left = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
        if MARKER not in left:
            break
        assert time.monotonic() < deadline, left
        time.sleep(0.05)


def test_stored_secrets_cannot_be_decrypted(served: Served) -> None:
    found = result(probe(served, "decrypt")[0])
    assert "plain" not in found and found["error"] in ("FileNotFoundError", "OperationalError")


def test_a_known_secret_never_comes_back_in_the_output(served: Served) -> None:
    call, raw = probe(served, "leak")
    assert call["outputs"][0]["logs"] == "RESULT ***\n"
    assert SECRET not in raw
