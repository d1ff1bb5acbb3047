"""Shared fixtures: the real local cluster, the operator process, the node agent."""

from fixtures.cluster import cleanup, control_plane, crds_installed  # noqa: F401
from fixtures.nodeagent import *  # noqa: F403
from fixtures.operator import operator  # noqa: F401
