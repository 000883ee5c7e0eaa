"""HTTP surfaces of the controller: route tables per resource, one app factory."""
