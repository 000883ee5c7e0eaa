"""Homerun controller: the API surfaces, persistence and invocation routing."""
