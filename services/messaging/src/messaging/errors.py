class NotFound(Exception):
    """Unknown, or not visible to the caller: the two are deliberately indistinguishable."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} not found")
        self.reason = f"{what} not found"
