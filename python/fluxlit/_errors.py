"""Exceptions that FluxLit raises into the apps it serves."""


class ClientDisconnected(OSError):
    """Raised by an ASGI ``send()`` once the client's connection has closed.

    Nothing sent after that reaches the client. ASGI spec version 2.4 specifies this error, so
    that an app which streams without calling ``receive()`` stops when its client leaves. An
    app may catch it to clean up. FluxLit logs it only at debug level.
    """
