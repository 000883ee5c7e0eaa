"""Homerun invoker: runs actions in sandboxes; talks to the controller only through Redis."""
