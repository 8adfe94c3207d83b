"""``cupola chat NAME``: a multi-turn conversation with an agent, over the HTTP API.

One Conversation holds the turns; each turn is a streamed Responses call naming the agent.
When the agent calls functions, ``--functions tools.py`` supplies their implementations:
they run here, in the client, and their outputs go back in the next request.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import click

from cupola.cli.agents import get_version
from cupola.cli.client import (
    CliError,
    CupolaClient,
    Unreachable,
    connection_options,
    one_line_errors,
    settings_for,
)
from cupola.exceptions import CupolaError

MAX_ROUNDS = 8
"""Function-call rounds per turn; the last one forbids further calls so the agent answers."""
EXIT_COMMANDS = frozenset({"/exit", "/quit"})


def load_functions(path: Path) -> ModuleType:
    """Import a Python file by path; its top-level callables implement the agent's functions."""
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(f"cupola_functions_{digest}", path)
    if spec is None or spec.loader is None:
        raise CliError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: report it, never a traceback
        raise CliError(f"{path}: cannot load: {type(exc).__name__}: {exc}") from None
    return module


def _call_text(name: str, args: dict[str, Any]) -> str:
    return f"{name}(" + ", ".join(f"{key}={value!r}" for key, value in args.items()) + ")"


def _one_line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _server_call(item: dict[str, Any]) -> str | None:
    """A tool call the platform ran, as the chat shows it (None for other items)."""
    kind = item.get("type")
    if kind == "mcp_call":
        try:
            args = json.loads(item.get("arguments") or "{}")
        except ValueError:
            args = {}
        call = _call_text(str(item.get("name")), args if isinstance(args, dict) else {})
        error = item.get("error")
        if error:
            message = error.get("message") if isinstance(error, dict) else error
            return f"⇢ {item.get('server_label')}: {call}\n⇠ error: {_one_line(str(message))}"
        return f"⇢ {item.get('server_label')}: {call}\n⇠ {_one_line(str(item.get('output')))}"
    if kind == "mcp_approval_request":
        return f"⇢ {item.get('server_label')}: {item.get('name')} waits for approval"
    if kind in ("code_interpreter_call", "file_search_call", "openapi_call"):
        return f"⇢ {kind.removesuffix('_call').replace('_', ' ')} ({item.get('status')})"
    return None


def _reply_text(response: dict[str, Any]) -> str:
    return "".join(
        str(part.get("text", ""))
        for item in response.get("output") or []
        if item.get("type") == "message"
        for part in item.get("content") or []
        if isinstance(part, dict)
    )


class ChatSession:
    """The state of one chat: the conversation, the agent it talks to, local functions."""

    def __init__(
        self,
        client: CupolaClient,
        agent: str,
        version: int | None,
        functions: ModuleType | None,
    ) -> None:
        self.client = client
        self.agent = agent
        self.version = version
        self.functions = functions
        self.conversation_id: str | None = None

    def start(self) -> None:
        conversation = self.client.post(
            "/openai/v1/conversations", {"metadata": {"cupola.chat.agent": self.agent}}
        )
        self.conversation_id = str(conversation["id"])

    def _reference(self) -> dict[str, Any]:
        ref: dict[str, Any] = {"type": "agent_reference", "name": self.agent}
        if self.version is not None:
            ref["version"] = str(self.version)
        return ref

    def turn(self, text: str) -> bool:
        """One user message, through any function calls, to the agent's reply.
        False (with the error printed) when the response failed."""
        pending: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": text}]
        must_answer = False
        for round_number in range(1, MAX_ROUNDS + 1):
            body: dict[str, Any] = {
                "input": pending,
                "conversation": self.conversation_id,
                "agent_reference": self._reference(),
            }
            if must_answer or round_number == MAX_ROUNDS:
                # The agent answers with what it has rather than asking again for a function
                # this client cannot run, or calling functions without end.
                body["tool_choice"] = "none"
            response = self._respond(body)
            if response is None:
                return False
            calls = [i for i in response.get("output") or [] if i.get("type") == "function_call"]
            if not calls:
                if not _reply_text(response):
                    click.secho("(the agent gave no reply)", dim=True)
                return True
            results = [self.call_function(call) for call in calls]
            pending = [item for item, _served in results]
            must_answer = not all(served for _item, served in results)
        click.echo("error: the agent kept calling functions without replying", err=True)
        return False

    def _respond(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The finished response, or None when it failed (the error printed on one line)."""
        try:
            response = self._stream(body)
        except Unreachable:
            raise
        except CupolaError as exc:
            click.echo(f"error: {_one_line(exc.message)}", err=True)
            return None
        if response.get("status") == "failed":
            error = response.get("error") or {}
            message = error.get("message") or "the response failed"
            click.echo(f"error: {_one_line(str(message))}", err=True)
            return None
        if response.get("status") == "incomplete":
            reason = (response.get("incomplete_details") or {}).get("reason", "unknown")
            click.secho(f"(the reply was cut short: {reason})", dim=True)
        return response

    def _stream(self, body: dict[str, Any]) -> dict[str, Any]:
        """Stream one response, printing its text as it arrives; return the final response."""
        at_line_start = True
        final: dict[str, Any] | None = None
        try:
            for kind, event in self.client.stream("/openai/v1/responses", body):
                if kind == "response.output_text.delta":
                    delta = str(event.get("delta", ""))
                    if delta:
                        click.echo(delta, nl=False)
                        at_line_start = delta.endswith("\n")
                elif kind == "response.output_item.done":
                    shown = _server_call(event.get("item") or {})
                    if shown:
                        if not at_line_start:
                            click.echo()
                        click.secho(shown, dim=True)
                        at_line_start = True
                elif kind in ("response.completed", "response.incomplete", "response.failed"):
                    final = event.get("response") or {}
                elif kind == "error":
                    error = event.get("error") if isinstance(event.get("error"), dict) else event
                    message = str((error or {}).get("message") or "the stream reported an error")
                    final = {"status": "failed", "error": {"message": message}}
        finally:
            if not at_line_start:
                click.echo()
        if final is None:
            raise CupolaError("the server ended the stream before the response finished")
        return final

    def call_function(self, call: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Run one function call locally: the ``function_call_output`` item to send back, and
        whether a function was there to run."""
        name = str(call.get("name"))
        try:
            args = json.loads(call.get("arguments") or "{}")
        except ValueError:
            args = None
        if not isinstance(args, dict):
            click.secho(f"→ {name}({call.get('arguments')})", dim=True)
            return self._output(call, {"error": "the arguments are not a JSON object"}), True
        click.secho(f"→ {_call_text(name, args)}", dim=True)
        fn = None
        if self.functions is None:
            click.secho(
                f"the agent asked for function {name!r}, and there is no implementation "
                "(give one with --functions FILE)",
                fg="yellow",
            )
        else:
            fn = getattr(self.functions, name, None) if not name.startswith("_") else None
            if not callable(fn):
                fn = None
                click.secho(f"the functions file has no function {name!r}", fg="yellow")
        if fn is None:
            return self._output(call, {"error": f"function {name} is not available"}), False
        try:
            result = fn(**args)
        except Exception as exc:  # the user's function failed: tell the agent, keep chatting
            result = {"error": f"{type(exc).__name__}: {exc}"}
        return self._output(call, result), True

    @staticmethod
    def _output(call: dict[str, Any], result: Any) -> dict[str, Any]:
        text = result if isinstance(result, str) else json.dumps(result, default=str)
        click.secho(f"← {_one_line(text)}", dim=True)
        return {"type": "function_call_output", "call_id": call.get("call_id"), "output": text}


def _lines(interactive: bool) -> Iterator[str]:
    """User messages from stdin, line by line, until EOF. At a terminal, ``input()`` gives
    line editing and history; from a pipe, lines are read as they come."""
    if interactive:
        try:
            import readline  # noqa: F401  (line editing for input(), where available)
        except ImportError:
            pass

        while True:
            try:
                yield input("you> ")
            except EOFError:
                click.echo()
                return
    for line in sys.stdin:
        yield line.rstrip("\r\n")


def run_chat(session: ChatSession, messages: Iterable[str], echo_input: bool) -> int:
    """Play the messages as turns; the number of turns that failed."""
    failed = 0
    for raw in messages:
        text = raw.strip()
        if not text:
            continue
        if text in EXIT_COMMANDS:
            break
        if echo_input:
            click.secho(f"you> {text}", bold=True)
        if not session.turn(text):
            failed += 1
    return failed


def register(cli: click.Group) -> None:
    @cli.command("chat")
    @click.argument("name")
    @click.option(
        "--functions",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help="Python file whose functions implement the agent's function tools.",
    )
    @click.option("--version", type=int, help="Agent version (default: the latest).")
    @click.option(
        "-m",
        "--message",
        "messages",
        multiple=True,
        help="Send this message instead of reading stdin (repeatable: one turn each).",
    )
    @connection_options
    @one_line_errors
    def chat(
        name: str,
        functions: Path | None,
        version: int | None,
        messages: tuple[str, ...],
        config: Path | None,
        endpoint: str | None,
    ) -> None:
        """Chat with an agent: type a message per line; /exit or end of input quits."""
        module = load_functions(functions) if functions is not None else None
        settings = settings_for(config, endpoint)
        with CupolaClient.from_settings(settings) as client:
            found = get_version(client, name, version)
            model = (found.get("definition") or {}).get("model", "?")
            session = ChatSession(client, name, version, module)
            session.start()
            interactive = not messages and sys.stdin.isatty()
            if interactive:
                click.secho(
                    f"chatting with {name} version {found.get('version')} ({model}); "
                    "/exit or Ctrl-D quits",
                    dim=True,
                )
            failed = run_chat(session, messages or _lines(interactive), echo_input=not interactive)
        if failed and not interactive:
            raise SystemExit(1)
