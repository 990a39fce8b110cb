from typing import Annotated

from fastapi import Depends

from chat_core.http_auth import from_app_state
from ws_edge.edge import Edge

EdgeDep = Annotated[Edge, Depends(from_app_state("edge"))]
