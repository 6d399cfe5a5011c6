"""Exceptions of the stand-in's Streamlit API."""


class StreamlitAPIException(Exception):
    """A Streamlit API call with invalid arguments."""
