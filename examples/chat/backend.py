"""The simulated slow services (code: ``streamboost._cli._demo_app._backend``)."""

from streamboost._cli._demo_app._backend import Backend, Message, Profile

__all__ = ["Backend", "Message", "Profile"]
