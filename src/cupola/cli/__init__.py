"""The ``cupola`` command line."""
