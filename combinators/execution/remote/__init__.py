"""The parallel executors: a session of workers (local processes, ZeroMQ, Ray) fed leaf activations.

The consumer keeps every sampling decision; workers run leaf activations and
stream their items back. `session` is the consumer's side (`activation` each
activation's, `peers` its workers), `placement` where each leaf runs,
`protocol` and `wire` what crosses a socket (`wire_rows` the row groups),
`worker` the worker's loop; `processes`, `zmq` and `ray` are the executors
users pick (`ray_actor` runs in Ray's workers).
"""
