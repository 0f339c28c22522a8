"""Graph errors; driver-specific exceptions are translated into these at one place per backend."""


class GraphError(Exception):
    """Base class for graph failures."""


class GraphEmpty(GraphError):
    """No graph has been loaded yet."""


class QueryError(GraphError, ValueError):
    """The query is invalid (syntax, unknown label/property, bad parameter)."""


class QueryRefused(GraphError, PermissionError):
    """A read-only console refused the query (a write, schema change or procedure call)."""


class QueryTimeout(GraphError, TimeoutError):
    """The query ran past its time limit and was interrupted."""
