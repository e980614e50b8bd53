"""The one exception the contract raises."""


class ProtocolError(ValueError):
    """A topic or payload does not follow the contract.

    `reason` is a short, stable token suitable as a metrics label; the message says more.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
