"""Persistent interpreters: one live Python or Node process per session, so state survives between runs
(``x = 42`` in one run, ``print(x)`` in the next).

The interpreter runs a small driver as the sandbox user. The agent hands it one cell at a time over a
Unix socket (the program text, its cwd and environment, and a fresh pipe for its stdin passed as a file
descriptor); the driver runs the cell in the session's namespace, flushes, and answers with the cell's
exit status. Output goes to the session's stdout and stderr pipes, which the agent forwards to the run
in progress. A cell that never finishes gets SIGINT first (its state survives a KeyboardInterrupt), then
SIGKILL, which ends the session; the next run starts a fresh interpreter. (Which run a session serves,
and when, is the core's: core/sessions.py. This is the I/O.)

Wire format on the control socket, both ways: a 4-byte big-endian length and a JSON object.
Agent -> driver: ``{"code": str, "cwd": str, "env": {..}}`` with the stdin pipe's read end attached
(SCM_RIGHTS). Driver -> agent: ``{"status": int}``.

Rich outputs (isol8rt/engine/rich.py reads them back): each cell starts by removing the session's rich
outputs file, ``/sandbox/.isol8rt/outputs.jsonl``, so that a cell returns only its own. When the cell's
env carries ``ISOL8RT_DISPLAY=1`` (the request's ``displayLastExpression``; the driver takes it out of the
env the cell sees), the value of a final expression statement is appended there as a ``display`` record,
as a notebook shows it. The Python driver then hands matplotlib figures left open to the data image's
backend (``isol8rt_figures``, if the cell loaded it), which appends them as ``image`` records: a cell is
a session's "exit".
"""

from __future__ import annotations

import json
import os
import socket
import struct

from .process import Child, Identity, kill_group, spawn

_LENGTH = struct.Struct(">I")
#: The driver's reply is {"status": n}: anything longer is not the driver speaking.
_MAX_REPLY = 4096

PYTHON_DRIVER = r"""
import ast, io, json, os, socket, struct, sys, traceback
_control = socket.socket(fileno=int(os.environ.pop("ISOL8RT_CONTROL_FD")))
_namespace = {"__name__": "__main__", "__builtins__": __builtins__, "__file__": "/sandbox/main.py"}
_OUTPUTS = "/sandbox/.isol8rt/outputs.jsonl"

def _display(value):
    record = {"kind": "display", "text": repr(value)}
    html = getattr(value, "_repr_html_", None)
    if callable(html):
        try:
            html = html()
        except Exception:
            html = None
        if isinstance(html, str):
            record["html"] = html
    os.makedirs(os.path.dirname(_OUTPUTS), exist_ok=True)
    with open(_OUTPUTS, "a") as _file:
        _file.write(json.dumps(record) + "\n")

def _figures():
    _flush = getattr(sys.modules.get("isol8rt_figures"), "flush", None)
    if _flush is not None:
        try:
            _flush()
        except Exception:
            traceback.print_exc()

def _receive():
    fds = []
    data = b""
    while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
        chunk, new_fds, _flags, _address = socket.recv_fds(_control, 1 << 20, 4)
        if not chunk:
            sys.exit(0)
        fds += new_fds
        data += chunk
    return json.loads(data[4:]), fds

def _status(exc):
    if isinstance(exc, SystemExit):
        code = exc.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code & 0xFF
        print(code, file=sys.stderr)
        return 1
    traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
    return 130 if isinstance(exc, KeyboardInterrupt) else 1

while True:
    _cell, _fds = _receive()
    if _fds:
        os.dup2(_fds[0], 0)
        os.close(_fds[0])
        sys.stdin = open(0, closefd=False)
    _show = _cell["env"].pop("ISOL8RT_DISPLAY", None) == "1"
    os.environ.clear()
    os.environ.update(_cell["env"])
    try:
        os.unlink(_OUTPUTS)
    except OSError:
        pass
    try:
        os.chdir(_cell["cwd"])
        _tree = compile(_cell["code"], "/sandbox/main.py", "exec", ast.PyCF_ONLY_AST)
        _last = _tree.body.pop() if _show and _tree.body and isinstance(_tree.body[-1], ast.Expr) else None
        exec(compile(_tree, "/sandbox/main.py", "exec"), _namespace)
        if _last is not None:
            _value = eval(compile(ast.Expression(_last.value), "/sandbox/main.py", "eval"), _namespace)
            if _value is not None:
                _display(_value)
        _code = 0
    except BaseException as _exc:
        _code = _status(_exc)
    _figures()
    for _stream in (sys.stdout, sys.stderr):
        try:
            _stream.flush()
        except Exception:
            pass
    _reply = json.dumps({"status": _code}).encode()
    _control.sendall(struct.pack(">I", len(_reply)) + _reply)
"""

NODE_DRIVER = r"""
const vm = require('vm'), net = require('net'), fs = require('fs'), util = require('util');
const OUTPUTS = '/sandbox/.isol8rt/outputs.jsonl';
const { createRequire } = require('module');
const control = new net.Socket({ fd: Number(process.env.ISOL8RT_CONTROL_FD), readable: true, writable: true });
delete process.env.ISOL8RT_CONTROL_FD;
globalThis.require = createRequire('/sandbox/main.js');
globalThis.module = { exports: {} };
globalThis.exports = globalThis.module.exports;
globalThis.__filename = '/sandbox/main.js';
globalThis.__dirname = '/sandbox';
let failed = false;
process.on('uncaughtException', (err) => { failed = true; console.error(err); });
process.on('unhandledRejection', (err) => { failed = true; console.error(err); });
const baseline = () => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap').length;
const idle = baseline();
async function settle() {
  // A cell is done when what it started (timers, sockets, child processes) has finished, as a script would.
  while (baseline() > idle) await new Promise((resolve) => setTimeout(resolve, 2));
}
async function run(cell) {
  failed = false;
  const show = cell.env.ISOL8RT_DISPLAY === '1';
  delete cell.env.ISOL8RT_DISPLAY;
  for (const key of Object.keys(process.env)) delete process.env[key];
  Object.assign(process.env, cell.env);
  try { fs.unlinkSync(OUTPUTS); } catch (err) { /* no previous outputs */ }
  let status = 0;
  try {
    process.chdir(cell.cwd);
    let script;
    let wrapped = false;
    try {
      script = new vm.Script(cell.code, { filename: '/sandbox/main.js' });
    } catch (err) {
      if (!(err instanceof SyntaxError) || !/await/.test(String(err.message))) throw err;
      script = new vm.Script(`(async () => {\n${cell.code}\n})()`, { filename: '/sandbox/main.js', lineOffset: -1 });
      wrapped = true;  // a top-level-await cell is a function body: it has no completion value to show
    }
    const value = await script.runInThisContext();
    await settle();
    if (show && !wrapped && value !== undefined) {
      fs.mkdirSync('/sandbox/.isol8rt', { recursive: true });
      fs.appendFileSync(OUTPUTS, JSON.stringify({ kind: 'display', text: util.inspect(value) }) + '\n');
    }
  } catch (err) {
    console.error(err);
    status = 1;
  }
  if (failed && status === 0) status = 1;
  const reply = Buffer.from(JSON.stringify({ status }));
  const header = Buffer.alloc(4);
  header.writeUInt32BE(reply.length);
  control.write(Buffer.concat([header, reply]));
}
let buffer = Buffer.alloc(0);
let queue = Promise.resolve();
control.on('data', (chunk) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 4 && buffer.length >= 4 + buffer.readUInt32BE(0)) {
    const length = buffer.readUInt32BE(0);
    const cell = JSON.parse(buffer.subarray(4, 4 + length).toString());
    buffer = buffer.subarray(4 + length);
    queue = queue.then(() => run(cell));
  }
});
control.on('end', () => process.exit(0));
"""

DRIVERS = {
    "python": ["python3", "-u", "-c", PYTHON_DRIVER],
    "node": ["node", "-e", NODE_DRIVER],
}


class SessionInterpreter:
    """A live interpreter and the agent's end of its control socket."""

    __slots__ = ("name", "child", "control", "replies")

    def __init__(self, name: str, child: Child, control: socket.socket) -> None:
        self.name = name
        self.child = child
        self.control = control
        self.replies = bytearray()

    @classmethod
    def start(cls, name: str, env: dict[str, str], cwd: str, identity: Identity) -> SessionInterpreter:
        argv = DRIVERS.get(name)
        if argv is None:
            raise ValueError(f"no persistent interpreter for {name!r}: only {', '.join(DRIVERS)}")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            child = spawn(argv, {**env, "ISOL8RT_CONTROL_FD": str(theirs.fileno())}, cwd, identity,
                          pass_fds=(theirs.fileno(),))
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(name, child, ours)

    def send_cell(self, code: str, cwd: str, env: dict[str, str], stdin: bytes) -> None:
        """Hand over one cell; its stdin travels as a pipe already holding the data, already closed."""
        payload = json.dumps({"code": code, "cwd": cwd, "env": env}).encode()
        message = _LENGTH.pack(len(payload)) + payload
        read_end, write_end = os.pipe2(os.O_CLOEXEC)
        try:
            if len(stdin) > 65536:
                import fcntl

                fcntl.fcntl(write_end, 1031, min(len(stdin), 1 << 20))  # F_SETPIPE_SZ
            os.write(write_end, stdin[: 1 << 20])
        finally:
            os.close(write_end)
        try:
            self.control.setblocking(True)
            sent = socket.send_fds(self.control, [message[:65536]], [read_end])
            if sent < len(message):
                self.control.sendall(message[sent:])
        finally:
            self.control.setblocking(False)
            os.close(read_end)

    def read_status(self) -> int | None:
        """The finished cell's status once its reply is complete; None while it is not; -1 when the
        interpreter is gone (EOF, or a reset: it died with part of a cell unread) or has broken the
        wire (a reply that is not the driver's), in which case it is killed: its wait status ends the cell.
        The interpreter runs user code, so its end of the socket is as untrusted as that code: nothing it
        sends may raise here, in the agent."""
        try:
            data = self.control.recv(65536)
        except BlockingIOError:
            return None
        except ConnectionResetError:
            return -1
        if not data:
            return -1
        self.replies += data
        if len(self.replies) < 4:
            return None
        (length,) = _LENGTH.unpack_from(self.replies)
        if length > _MAX_REPLY:
            return self._broken()
        if len(self.replies) < 4 + length:
            return None
        try:
            status = json.loads(bytes(self.replies[4 : 4 + length]))["status"]
        except (ValueError, TypeError, KeyError, RecursionError):
            return self._broken()
        if type(status) is not int or not 0 <= status <= 255:
            return self._broken()
        del self.replies[: 4 + length]
        return status

    def _broken(self) -> int:
        kill_group(self.child.pid)
        return -1
