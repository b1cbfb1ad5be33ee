"""The errors a user can fix. The CLI prints them as one line and exits non-zero."""


class NetAdaptError(Exception):
    """Bad input: the message names the offending key or file."""


class ConfigError(NetAdaptError):
    """A params key is unknown, of the wrong type or out of range."""


class DataError(NetAdaptError):
    """A dataset file or folder is missing, malformed or fails its checksum."""


def describe(exc: BaseException, limit: int | None = 160, first_sentence: bool = False) -> str:
    """`Type: first line of the message` (cut to its first sentence, then to `limit` characters): how
    an error from torch, pandas, json or numpy is quoted inside a one-line message naming the file."""
    text = (str(exc).strip().splitlines() or [""])[0]
    if first_sentence:
        text = text.split(". ")[0]
    text = text[:limit] if limit else text
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
