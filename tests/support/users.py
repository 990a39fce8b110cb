import secrets


def new_user() -> str:
    """A fresh, valid Vietnamese mobile number, so tests never share users."""
    return "+849" + "".join(secrets.choice("0123456789") for _ in range(8))
