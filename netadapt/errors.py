"""The errors a user can fix. The CLI prints them as one line and exits non-zero."""


class NetAdaptError(Exception):
    """Bad input: the message names the offending key or file."""


class ConfigError(NetAdaptError):
    """A params key is unknown, of the wrong type or out of range."""


class DataError(NetAdaptError):
    """A dataset file or folder is missing, malformed or fails its checksum."""
