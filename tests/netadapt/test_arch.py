from dataclasses import replace

import pytest

from netadapt.arch import Architecture, ArchitectureError, Dimension, ModelSpec, pinned

SPEC = ModelSpec("plain_cnn", (1, 28, 28), 10, 1.0, 8)


def arch() -> Architecture:
    return Architecture(SPEC, (Dimension("a.expand", 48, 48, 8, 8), Dimension("a.out", 24, 24, 8, 0)))


def test_json_round_trip_preserves_everything():
    a = arch().with_widths({"a.expand": 16, "a.out": 0})
    b = Architecture.from_json(a.to_json())
    assert b == a and b.widths == {"a.expand": 16, "a.out": 0}
    assert b.model.input_shape == (1, 28, 28)


def test_choices_and_extremes():
    a = arch()
    assert a.dim("a.out").choices() == [0, 8, 16, 24]
    assert a.dim("a.expand").choices() == [8, 16, 24, 32, 40, 48]
    assert a.smallest().widths == {"a.expand": 8, "a.out": 0}
    assert a.smallest().largest() == a
    assert a.narrowest().widths == {"a.expand": 8, "a.out": 8}, "width alone: no block removed"
    assert a.dim("a.out").bypassable and not a.dim("a.expand").bypassable


@pytest.mark.parametrize("widths,message", [
    ({"a.expand": 20}, "a.expand: width 20 is not a multiple of the granularity 8"),
    ({"a.expand": 56}, "a.expand: width 56 is over the maximum 48"),
    ({"a.expand": 0}, "a.expand: width 0 is below the minimum (0 is allowed only for bypassable blocks)"),
    ({"a.out": -8}, "a.out: width -8 is below the minimum"),
    ({"a.expand": 16.0}, "a.expand: width must be an integer, got 16.0"),
    ({"nope": 8}, "nope: no such dimension"),
])
def test_invalid_widths_name_the_dimension(widths, message):
    with pytest.raises(ArchitectureError, match=message.replace("(", r"\(").replace(")", r"\)")):
        arch().with_widths(widths)


def test_invalid_dimensions_and_descriptions():
    with pytest.raises(ArchitectureError, match="b: maximum width 20 is not a positive multiple of the granularity 8"):
        Dimension("b", 20, 16, 8)
    with pytest.raises(ArchitectureError, match="x: dimension named twice"):
        Architecture(SPEC, (Dimension("x", 8, 8), Dimension("x", 8, 8)))
    with pytest.raises(ArchitectureError, match="architecture: not valid JSON"):
        Architecture.from_json("{")
    with pytest.raises(ArchitectureError, match="architecture: malformed description"):
        Architecture.from_json('{"model": {}}')


def test_fixed_dimensions_keep_their_built_size_and_the_spec_says_so():
    """`model.fixed`: a matched dimension has one choice, its maximum (a bypassable one can no longer
    reach 0); the others are untouched; the spec's patterns survive the JSON round trip, and a spec
    without any is described as before."""
    spec = replace(SPEC, fixed=("a.o*",))
    a = Architecture(spec, pinned(arch().dims, spec.fixed))
    assert a.dim("a.out").choices() == [24] and a.dim("a.out").fixed and not a.dim("a.out").bypassable
    assert a.dim("a.expand").choices() == [8, 16, 24, 32, 40, 48] and not a.dim("a.expand").fixed
    assert a.smallest().widths == {"a.expand": 8, "a.out": 24}
    assert Architecture.from_json(a.to_json()) == a and a.to_dict()["model"]["fixed"] == ["a.o*"]
    assert "fixed" not in arch().to_dict()["model"]
    with pytest.raises(ArchitectureError, match="a.out: width 0 is below the minimum"):
        a.with_widths({"a.out": 0})


def test_a_fixed_pattern_that_matches_no_dimension_is_named_with_the_models_dimensions():
    with pytest.raises(ArchitectureError, match=r"model.fixed\[1\]: '\*.stage' matches no dimension of the model "
                                                r"\(its dimensions: a.expand, a.out\)"):
        pinned(arch().dims, ["a.*", "*.stage"])
