"""Any network as a search space: a traced graph's coupled channel groups as dimensions.

`channels` finds the channel spaces and bypassable branches, `masked` builds the super-network with
per-sample widths, `extract` the physically slim network, `specs` the layer specs (LUT units, MACs,
parameters); `network.TracedNetwork` puts them behind the `SearchableModel` protocol.
"""

from netadapt.graph.errors import GraphError
from netadapt.graph.network import TracedNetwork

__all__ = ["GraphError", "TracedNetwork"]
