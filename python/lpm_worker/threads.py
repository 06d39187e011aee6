"""A small pool of daemon threads for synchronous handlers.

``concurrent.futures.ThreadPoolExecutor`` joins its threads when the
interpreter exits, so one handler stuck in a blocking call would keep a
worker alive after its supervisor told it to go (or went away). These
threads are daemons: the process exits whatever they are doing.
"""

import os
import queue
import threading


class DaemonPool:
    """Runs functions on up to ``size`` daemon threads, started as needed."""

    def __init__(self, size=None):
        self._size = size or min(32, (os.cpu_count() or 1) + 4)
        self._jobs = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        # Threads waiting for a job that no submit has claimed yet.
        self._idle = 0
        # Jobs queued while every thread was busy and no more could start.
        self._backlog = 0

    def submit(self, loop, context, fn, *args):
        """Runs ``fn(*args)`` in ``context`` on a pool thread; returns an asyncio future of its result."""
        future = loop.create_future()
        start = False
        with self._lock:
            if self._idle:
                self._idle -= 1
            elif self._threads < self._size:
                self._threads += 1
                start = True
            else:
                self._backlog += 1
        self._jobs.put((loop, future, context, fn, args))
        if start:
            threading.Thread(target=self._work, name="lpm-worker-sync", daemon=True).start()
        return future

    def _work(self):
        while True:
            loop, future, context, fn, args = self._jobs.get()
            try:
                result = context.run(fn, *args)
            except BaseException as e:  # handed to the awaiting task, whatever it is
                _settle(loop, future, None, e)
            else:
                _settle(loop, future, result, None)
            with self._lock:
                if self._backlog:
                    self._backlog -= 1
                else:
                    self._idle += 1


def _settle(loop, future, result, error):
    def settle():
        if future.done():
            return  # its request was cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass  # the loop is closed: the worker is exiting
