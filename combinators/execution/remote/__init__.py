"""The parallel executors: a session of workers (local processes, ZeroMQ, Ray) fed leaf activations.

The consumer keeps every sampling decision; workers run leaf activations and
stream their items back. `session` is the consumer's side, `placement` where
each leaf runs, `protocol` and `wire` what crosses a socket, `worker` the
worker's loop; `processes`, `zmq` and `ray` are the executors users pick.
"""
