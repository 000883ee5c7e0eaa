"""The built-in actions of the `whisk.system` namespace, shipped as source files."""
