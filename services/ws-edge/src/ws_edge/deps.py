from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from ws_edge.edge import Edge


async def get_edge(connection: HTTPConnection) -> Edge:
    edge: Edge = connection.app.state.edge
    return edge


EdgeDep = Annotated[Edge, Depends(get_edge)]
