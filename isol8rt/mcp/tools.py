"""The MCP tools: what an agent sees (names, descriptions, JSON Schemas) and what each call does.

Arguments and results are msgspec Structs: the same types give the schemas in ``tools/list``, the checking
of a call's arguments (with the offending field named), and the ``structuredContent`` of its result.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Awaitable, Callable, Literal

import msgspec

from ..engine import DockerIsol8
from ..errors import InvalidRequest
from ..runtimes import Runtime
from ..types import ExecutionRequest, FileContent

#: The session every persistent-mode call of one MCP connection shares.
SESSION_ID = "mcp"


class _Args(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class ExecuteCodeArgs(_Args):
    code: Annotated[str, msgspec.Meta(description="The program's source code.")]
    runtime: Annotated[Runtime, msgspec.Meta(description="Which language runs it.")] = "python"
    stdin: Annotated[str, msgspec.Meta(description="Text for the program's standard input.")] | msgspec.UnsetType \
        = msgspec.UNSET
    files: Annotated[dict[str, str], msgspec.Meta(
        description="Text files to create before the run: path (relative to /sandbox, the working directory) "
                    "-> content.")] | msgspec.UnsetType = msgspec.UNSET
    timeout_ms: Annotated[int, msgspec.Meta(ge=1, description="Wall-clock limit in milliseconds; the server's "
                                                              "limit caps it.")] | msgspec.UnsetType = msgspec.UNSET
    display: Annotated[bool, msgspec.Meta(
        description="Persistent sessions, Python and Node: also return the value of the code's last expression, "
                    "as a notebook shows it (a pandas DataFrame as text, and as HTML).")] = False


class Displayed(msgspec.Struct, omit_defaults=True):
    text: str
    html: str | None = None


class ExecuteCodeResult(msgspec.Struct, omit_defaults=True):
    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    truncated: bool
    duration_ms: float
    #: How many figures the run drew (matplotlib): each is an image content block of the answer.
    figures: int = 0
    displays: list[Displayed] = []


class WithImages(msgspec.Struct, frozen=True):
    """A tool's output and the PNG images that go with it, sent as MCP image content."""

    output: msgspec.Struct
    images: list[bytes]


class WriteFileArgs(_Args):
    path: Annotated[str, msgspec.Meta(description="Where, relative to /sandbox (or an absolute path in it).")]
    content: Annotated[str, msgspec.Meta(description="The file's content: text, or base64 with "
                                                     "encoding=base64.")]
    encoding: Literal["utf-8", "base64"] = "utf-8"


class WriteFileResult(msgspec.Struct):
    path: str
    bytes: int


class ReadFileArgs(_Args):
    path: Annotated[str, msgspec.Meta(description="Which file, relative to /sandbox (or an absolute path in it).")]
    encoding: Annotated[Literal["utf-8", "base64"], msgspec.Meta(
        description="How to return the content; by default text when it is UTF-8 text, else base64.")] \
        | msgspec.UnsetType = msgspec.UNSET


class ReadFileResult(msgspec.Struct):
    path: str
    content: str
    encoding: Literal["utf-8", "base64"]
    bytes: int


class ResetSessionArgs(_Args):
    pass


class ResetSessionResult(msgspec.Struct):
    #: False when there was no session yet (nothing to reset).
    reset: bool


class Context(msgspec.Struct, kw_only=True):
    """What every tool call runs against."""

    engine: DockerIsol8
    #: Runs share one persistent session (files and interpreter state) when True.
    persistent: bool
    #: The longest run a call may ask for (the engine's timeout).
    max_timeout_ms: int
    #: Starts the engine (a no-op once it runs), awaited before every tool call: the server answers the
    #: handshake and tools/list whether or not Docker is up, and a call made while it is down fails with
    #: the engine's own message (what is wrong, what to run), as a tool result the model can show.
    start: Callable[[], Awaitable[object]] | None = None

    async def ensure_started(self) -> None:
        if self.start is not None:
            await self.start()

    @property
    def session_id(self) -> str | None:
        return SESSION_ID if self.persistent else None


async def execute_code(ctx: Context, args: ExecuteCodeArgs) -> WithImages:
    timeout = ctx.max_timeout_ms if args.timeout_ms is msgspec.UNSET else min(args.timeout_ms, ctx.max_timeout_ms)
    files: dict[str, FileContent] = dict(args.files) if args.files is not msgspec.UNSET else {}
    request = ExecutionRequest(runtime=args.runtime, code=args.code, timeout_ms=timeout, files=files,
                               stdin=None if args.stdin is msgspec.UNSET else args.stdin,
                               display_last_expression=args.display)
    result = await ctx.engine.execute(request, session_id=ctx.session_id)
    images = result.images or []
    output = ExecuteCodeResult(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code,
                               timed_out=result.timed_out, truncated=result.truncated,
                               duration_ms=result.duration_ms, figures=len(images),
                               displays=[Displayed(shown.text, shown.html) for shown in result.displays or ()])
    return WithImages(output, images)


async def write_file(ctx: Context, args: WriteFileArgs) -> WriteFileResult:
    if args.encoding == "base64":
        try:
            data = base64.b64decode(args.content, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("content: not valid base64") from None
    else:
        data = args.content.encode()
    await ctx.engine.put_file(args.path, data, session_id=SESSION_ID)
    return WriteFileResult(path=args.path, bytes=len(data))


async def read_file(ctx: Context, args: ReadFileArgs) -> ReadFileResult:
    data = await ctx.engine.get_file(args.path, session_id=SESSION_ID)
    encoding = args.encoding
    # By default text, unless it is not UTF-8 or holds NUL bytes (binary that happens to decode).
    if encoding == "utf-8" or (encoding is msgspec.UNSET and b"\0" not in data):
        try:
            return ReadFileResult(path=args.path, content=data.decode(), encoding="utf-8", bytes=len(data))
        except UnicodeDecodeError:
            if encoding == "utf-8":
                raise InvalidRequest(f"{args.path} is not UTF-8 text; read it with encoding=base64") from None
    return ReadFileResult(path=args.path, content=base64.b64encode(data).decode(), encoding="base64",
                          bytes=len(data))


async def reset_session(ctx: Context, args: ResetSessionArgs) -> ResetSessionResult:
    return ResetSessionResult(reset=await ctx.engine.close_session(SESSION_ID))


class Tool(msgspec.Struct, frozen=True):
    name: str
    title: str
    description: str
    args: type[_Args]
    result: type[msgspec.Struct]
    #: The output Struct (the answer's structuredContent), or it WithImages.
    run: Callable[[Context, Any], Awaitable[msgspec.Struct]]
    #: Listed only when the server keeps a persistent session.
    session_only: bool = False
    read_only: bool = False
    destructive: bool = False


TOOLS: tuple[Tool, ...] = (
    Tool("execute_code", "Run code in a sandbox",
         "Run a program (Python, Node.js, Bun, Deno or Bash) in an isolated, locked-down container and get "
         "its stdout, stderr and exit code. No network unless the server allows it. In a persistent session "
         "(see write_file) files and Python/Node variables carry over between calls; otherwise every call "
         "starts from a clean sandbox. Files go in /sandbox, the working directory. Figures a Python "
         "program draws with matplotlib (in an image that has it) come back as PNG images.",
         ExecuteCodeArgs, ExecuteCodeResult, execute_code),
    Tool("write_file", "Write a file into the session",
         "Write a file into the persistent session's /sandbox, for later execute_code calls to use.",
         WriteFileArgs, WriteFileResult, write_file, session_only=True),
    Tool("read_file", "Read a file from the session",
         "Read a file from the persistent session's /sandbox, e.g. one a program wrote.",
         ReadFileArgs, ReadFileResult, read_file, session_only=True, read_only=True),
    Tool("reset_session", "Reset the session",
         "Discard the persistent session (its files, variables and runtime) so the next call starts afresh, "
         "possibly with another runtime.",
         ResetSessionArgs, ResetSessionResult, reset_session, session_only=True, destructive=True),
)


def _schema(struct: type[msgspec.Struct]) -> dict[str, Any]:
    # Nested Structs (a result's displays) are $defs of the schema itself: a tool's schema stands alone.
    _, components = msgspec.json.schema_components([struct], ref_template="#/$defs/{name}")
    schema = dict(components.pop(struct.__name__))
    schema.pop("title", None)
    if components:
        schema["$defs"] = components
    return schema


def describe(tool: Tool, *, structured: bool, open_world: bool) -> dict[str, Any]:
    """The tool as ``tools/list`` shows it (``structured``: with outputSchema, MCP 2025-06-18 on)."""
    listing: dict[str, Any] = {
        "name": tool.name,
        "title": tool.title,
        "description": tool.description,
        "inputSchema": _schema(tool.args),
        "annotations": {
            "title": tool.title,
            "readOnlyHint": tool.read_only,
            "destructiveHint": tool.destructive,
            "idempotentHint": tool.read_only,
            "openWorldHint": open_world and tool.name == "execute_code",
        },
    }
    if structured:
        listing["outputSchema"] = _schema(tool.result)
    return listing


def parse_args(tool: Tool, arguments: Any) -> Any:
    """The call's arguments as the tool's Struct; InvalidRequest naming the field otherwise. Nulls count as
    left out: models often send them for optional parameters."""
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise InvalidRequest("arguments must be an object")
    try:
        known = tool.args.__struct_fields__
        return msgspec.convert({k: v for k, v in arguments.items() if v is not None or k not in known}, tool.args)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(f"invalid arguments for {tool.name}: {exc}") from None
