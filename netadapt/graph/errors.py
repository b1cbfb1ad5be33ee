"""Errors of the traced-graph search space."""

from netadapt.errors import ConfigError


class GraphError(ConfigError):
    """A user's model the graph analysis refuses: the message names `model.name` and the graph node."""
