'use strict';
// Finding the channel (protocol/WIRE.md, "The channel" and "The stdio
// transport"): the inherited socketpair when LPM_IPC_FD is set, else stdin
// and stdout. Over stdio, fd 1 carries frames only, so the process's own
// stdout (process.stdout, console.log) is pointed at stderr first.

const net = require('net');
const tty = require('tty');
const { Console } = require('console');

/**
 * Opens the channel this process inherited.
 * Returns `{ kind, input, output }`: a readable of the supervisor's bytes and
 * a writable for ours.
 */
function openChannel(env = process.env) {
  const fdText = env.LPM_IPC_FD;
  if (fdText !== undefined) {
    const fd = Number(fdText);
    if (!Number.isSafeInteger(fd) || fd < 0 || String(fd) !== fdText.trim()) {
      throw new Error(`LPM_IPC_FD is "${fdText}", not a file descriptor number`);
    }
    const socket = new net.Socket({ fd, readable: true, writable: true });
    return { kind: 'socketpair', input: socket, output: socket };
  }
  if (tty.isatty(0) || tty.isatty(1)) {
    throw new Error(
      'no LPM_IPC_FD and stdin or stdout is a terminal: this program is an lpm worker; ' +
        'start it from an lpm pool (WorkerCommand), or through a launcher such as ssh ' +
        'that connects its stdin and stdout to the supervisor',
    );
  }
  // Taken before the redirection: the real stdout, on fd 1.
  const output = process.stdout;
  redirectStdoutToStderr();
  return { kind: 'stdio', input: process.stdin, output };
}

/** Points process.stdout and the global console at stderr. */
function redirectStdoutToStderr() {
  Object.defineProperty(process, 'stdout', {
    configurable: true,
    enumerable: true,
    get: () => process.stderr,
  });
  // The global console may have bound fd 1 already; replacing its methods in
  // place redirects every module's `console.log`.
  const toStderr = new Console({ stdout: process.stderr, stderr: process.stderr });
  for (const key of Object.keys(toStderr)) {
    if (typeof toStderr[key] === 'function' && typeof console[key] === 'function') {
      console[key] = toStderr[key];
    }
  }
}

module.exports = { openChannel };
