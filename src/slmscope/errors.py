"""Whose fault an error is. A `UserError` is something the user can fix (a file, a name, a
setting, a server they run): the command line reports it in one line that names the place. Any
other exception is a bug in slmscope and stays a traceback.

A leaf module, like `home`: every room may import it.
"""

from __future__ import annotations


class UserError(Exception):
    """Base of the errors a user causes and fixes; the message names the place."""


class ConfigError(UserError, ValueError):
    """A configuration mistake: an unknown name, a bad value, a spec that does not validate,
    an output path that cannot be used."""
