"""Invocation routing in the controller: dispatch over Redis, record results, wake callers,
reap dead invokers. Talks to invokers only through `invoker.protocol`."""
