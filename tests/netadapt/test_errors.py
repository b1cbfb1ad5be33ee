"""`errors.describe`: how a library's exception is quoted inside a one-line message naming a file."""

from netadapt.errors import describe


def test_describe_keeps_the_type_and_the_first_line_only():
    exc = ValueError("Error tokenizing data. C error: Expected 3 fields\nin line 7, saw 5\n")
    assert describe(exc) == "ValueError: Error tokenizing data. C error: Expected 3 fields"
    assert describe(exc, first_sentence=True) == "ValueError: Error tokenizing data"
    assert describe(exc, limit=5) == "ValueError: Error"


def test_describe_of_an_empty_message_is_the_type():
    assert describe(KeyError()) == "KeyError"
    assert describe(RuntimeError("  \n ")) == "RuntimeError"
