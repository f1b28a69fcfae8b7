"""A consumer to be killed (run by the executor tests): ``python consumer.py START_METHOD``.

Opens a `Processes` and a `ZMQ` session with one worker each, starts a slow item in
both, then prints one JSON line (the pids of its workers and helper processes, the
ZMQ port, the run folder) and sleeps until killed.
"""

import json
import sys
import time


def slow():
    yield 0
    time.sleep(300)
    yield 1


def main(method: str) -> None:
    from multiprocessing import forkserver, resource_tracker

    from combinators.execution.remote.processes import Processes
    from combinators.execution.remote.zmq import ZMQ

    sessions = [Processes(workers=1, start_method=method).open(), ZMQ(workers=1, start_method=method).open()]
    activations = [session.submit(slow) for session in sessions]
    for activation in activations:
        next(activation)  # the workers are inside the slow item now
    helpers = [forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid]
    report = {
        "pids": [process.pid for session in sessions for process in session._resources.processes],
        "helpers": [pid for pid in helpers if pid],
        "port": int(sessions[1].address.rsplit(":", 1)[1]),
        "folder": sessions[0].address.removeprefix("ipc://").rsplit("/", 1)[0],
    }
    print(json.dumps(report), flush=True)
    time.sleep(300)


if __name__ == "__main__":
    main(sys.argv[1])
